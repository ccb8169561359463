# A scaled-down copy: single-AZ database, no Redis replica, one NAT gateway, one API
# task. Several dev stacks live side by side with different `environment` names (each
# its own state key: environments/dev.s3.tfbackend with another key).
environment          = "dev"
image                = "ghcr.io/pricehub/pricehub@sha256:0000000000000000000000000000000000000000000000000000000000000000"
certificate_arn      = "arn:aws:acm:eu-west-1:111111111111:certificate/dev"
github_repository    = "pricehub/pricehub"
az_count             = 2
nat_gateways         = 1
api_count            = 1
api_max_count        = 2
api_cpu              = 256
api_memory           = 512
db_instance_class    = "db.t4g.micro"
db_allocated_storage = 20
db_multi_az          = false
redis_node_type      = "cache.t4g.micro"
redis_replicas       = 0
log_retention_days   = 365
deletion_protection  = false
