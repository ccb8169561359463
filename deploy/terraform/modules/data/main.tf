# PostgreSQL (RDS, Multi-AZ, encrypted, Performance Insights, logs to CloudWatch) and
# Redis (ElastiCache replication group with automatic failover), reachable only from the
# tasks' security group. The connection URLs and the ingest token are generated here
# and kept in Secrets Manager; ECS injects them, nothing is in the repository.

variable "name" {
  description = "Name prefix of every resource."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the database and Redis."
  type        = list(string)
}

variable "client_sg_id" {
  description = "Security group allowed to connect (the ECS tasks)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for storage, secrets and logs."
  type        = string
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "db_storage_gb" {
  description = "Initial allocated storage, GiB."
  type        = number
}

variable "db_multi_az" {
  description = "Synchronous standby in another AZ."
  type        = bool
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "redis_replicas" {
  description = "Replicas besides the primary."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the database from deletion."
  type        = bool
}

variable "log_days" {
  description = "Retention of the database's log groups, days."
  type        = number
}

resource "aws_security_group" "db" {
  name        = "${var.name}-data"
  description = "PostgreSQL and Redis, from the pricehub tasks only"
  vpc_id      = var.vpc_id

  ingress {
    description     = "PostgreSQL from the tasks"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [var.client_sg_id]
  }
  ingress {
    description     = "Redis from the tasks"
    from_port       = 6379
    to_port         = 6379
    protocol        = "tcp"
    security_groups = [var.client_sg_id]
  }
}

resource "aws_db_subnet_group" "main" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "main" {
  name   = var.name
  family = "postgres16"
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
}

resource "random_password" "db" {
  length  = 40
  special = false
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${var.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_cloudwatch_log_group" "db" {
  name              = "/aws/rds/instance/${var.name}/postgresql"
  retention_in_days = var.log_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_db_instance" "main" {
  identifier                            = var.name
  engine                                = "postgres"
  engine_version                        = "16"
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_storage_gb
  max_allocated_storage                 = var.db_storage_gb * 4
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = var.kms_key_arn
  db_name                               = "pricehub"
  username                              = "pricehub"
  password                              = random_password.db.result
  multi_az                              = var.db_multi_az
  db_subnet_group_name                  = aws_db_subnet_group.main.name
  parameter_group_name                  = aws_db_parameter_group.main.name
  vpc_security_group_ids                = [aws_security_group.db.id]
  publicly_accessible                   = false
  backup_retention_period               = 14
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-final"
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  apply_immediately                     = false
  depends_on                            = [aws_cloudwatch_log_group.db]
}

resource "aws_elasticache_subnet_group" "main" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_elasticache_replication_group" "main" {
  # checkov:skip=CKV_AWS_30:pricehub's Redis client is built without TLS (Cargo.toml redis features); Redis is only reachable from the tasks' security group in private subnets. Enabling it needs the client's TLS feature first.
  # checkov:skip=CKV_AWS_31:An AUTH token requires transit encryption on ElastiCache (see CKV_AWS_30).
  # checkov:skip=CKV2_AWS_50:Automatic failover is on wherever there is a replica (staging, production); the dev copy runs one node on purpose.
  replication_group_id       = var.name
  description                = "pricehub rate cache and shared rate limits"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  num_cache_clusters         = 1 + var.redis_replicas
  automatic_failover_enabled = var.redis_replicas > 0
  multi_az_enabled           = var.redis_replicas > 0
  subnet_group_name          = aws_elasticache_subnet_group.main.name
  security_group_ids         = [aws_security_group.db.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = false
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 3
  port                       = 6379
}

resource "random_password" "ingest_token" {
  length  = 48
  special = false
}

locals {
  secrets = {
    DATABASE_URL          = "postgres://pricehub:${random_password.db.result}@${aws_db_instance.main.address}:5432/pricehub?sslmode=require"
    REDIS_URL             = "redis://${aws_elasticache_replication_group.main.primary_endpoint_address}:6379/"
    PRICEHUB_INGEST_TOKEN = random_password.ingest_token.result
  }
}

resource "aws_secretsmanager_secret" "main" {
  # checkov:skip=CKV2_AWS_57:Rotation needs a rotation Lambda that also restarts tasks; rotate by `terraform apply -replace=random_password.db` and a rollout (docs/deployment.md).
  for_each                = local.secrets
  name                    = "${var.name}/${each.key}"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "main" {
  for_each      = local.secrets
  secret_id     = aws_secretsmanager_secret.main[each.key].id
  secret_string = each.value
}

output "secret_arns" {
  description = "Secrets Manager ARNs by environment variable name (DATABASE_URL, REDIS_URL, PRICEHUB_INGEST_TOKEN)."
  value       = { for k, s in aws_secretsmanager_secret.main : k => s.arn }
}

output "db_endpoint" {
  description = "PostgreSQL host name."
  value       = aws_db_instance.main.address
}

output "db_instance_id" {
  description = "RDS instance identifier (alarms)."
  value       = aws_db_instance.main.identifier
}
