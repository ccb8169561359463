# pricehub on AWS: ECS Fargate behind an ALB, RDS PostgreSQL (Multi-AZ), ElastiCache
# Redis, secrets in Secrets Manager, CloudWatch logs and alarms, and a GitHub OIDC role
# for the release workflow. See docs/deployment.md (## AWS) for why ECS Fargate.

module "network" {
  source       = "./modules/network"
  name         = "pricehub-${var.environment}"
  cidr         = var.vpc_cidr
  zones        = [for letter in slice(["a", "b", "c"], 0, var.az_count) : "${var.region}${letter}"]
  nat_gateways = var.nat_gateways
  kms_key_arn  = aws_kms_key.main.arn
  log_days     = var.log_retention_days
}

module "data" {
  source              = "./modules/data"
  name                = "pricehub-${var.environment}"
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.private_subnet_ids
  client_sg_id        = module.network.task_security_group_id
  kms_key_arn         = aws_kms_key.main.arn
  db_instance_class   = var.db_instance_class
  db_storage_gb       = var.db_allocated_storage
  db_multi_az         = var.db_multi_az
  redis_node_type     = var.redis_node_type
  redis_replicas      = var.redis_replicas
  deletion_protection = var.deletion_protection
  log_days            = var.log_retention_days
}

module "service" {
  source              = "./modules/service"
  name                = "pricehub-${var.environment}"
  region              = var.region
  vpc_id              = module.network.vpc_id
  vpc_cidr            = var.vpc_cidr
  public_subnet_ids   = module.network.public_subnet_ids
  private_subnet_ids  = module.network.private_subnet_ids
  task_sg_id          = module.network.task_security_group_id
  image               = var.image
  certificate_arn     = var.certificate_arn
  kms_key_arn         = aws_kms_key.main.arn
  secret_arns         = module.data.secret_arns
  api_count           = var.api_count
  api_max_count       = var.api_max_count
  api_cpu             = var.api_cpu
  api_memory          = var.api_memory
  log_days            = var.log_retention_days
  alarm_topic_arn     = aws_sns_topic.alarms.arn
  deletion_protection = var.deletion_protection
  github_repository   = var.github_repository
  environment         = var.environment
}

data "aws_caller_identity" "current" {}

# One customer-managed key for logs, secrets, the database, Redis and the alarm topic.
resource "aws_kms_key" "main" {
  description             = "pricehub-${var.environment}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Account"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
      },
      {
        Sid       = "AlarmsToSns"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/pricehub-${var.environment}"
  target_key_id = aws_kms_key.main.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "pricehub-${var.environment}-alarms"
  kms_master_key_id = aws_kms_key.main.id
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
