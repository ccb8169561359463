# Production's shape at a smaller size: Multi-AZ database, a Redis replica, two API tasks.
environment          = "staging"
image                = "ghcr.io/pricehub/pricehub@sha256:0000000000000000000000000000000000000000000000000000000000000000"
certificate_arn      = "arn:aws:acm:eu-west-1:111111111111:certificate/staging"
github_repository    = "pricehub/pricehub"
az_count             = 2
nat_gateways         = 2
api_count            = 2
api_max_count        = 4
api_cpu              = 512
api_memory           = 1024
db_instance_class    = "db.t4g.medium"
db_allocated_storage = 50
db_multi_az          = true
redis_node_type      = "cache.t4g.small"
redis_replicas       = 1
