variable "environment" {
  description = "Environment name (dev, staging, production); prefixes every resource."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment must be lowercase letters, digits and dashes."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones (a, b, c of the region, up to 3) to spread subnets, the database standby and tasks over."
  type        = number
  default     = 3
}

variable "nat_gateways" {
  description = "NAT gateways: one per AZ for production, one shared for dev."
  type        = number
  default     = 3
}

variable "image" {
  description = "Container image by digest (ghcr.io/OWNER/pricehub@sha256:...); the release workflow rolls out new digests."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the load balancer's HTTPS listener."
  type        = string
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic (empty: no subscription)."
  type        = string
  default     = ""
}

variable "github_repository" {
  description = "owner/name of the repository whose release workflow may deploy (GitHub OIDC)."
  type        = string
}

variable "api_count" {
  description = "Desired API tasks (the autoscaling minimum)."
  type        = number
  default     = 3
}

variable "api_max_count" {
  description = "Autoscaling maximum of API tasks."
  type        = number
  default     = 12
}

variable "api_cpu" {
  description = "CPU units of one API task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "api_memory" {
  description = "Memory of one API task, MiB."
  type        = number
  default     = 2048
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.m7g.large"
}

variable "db_allocated_storage" {
  description = "Initial storage of the database, GiB (autoscaling up to 4x)."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Run a synchronous standby in another AZ (off only for dev)."
  type        = bool
  default     = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.m7g.large"
}

variable "redis_replicas" {
  description = "Redis replicas besides the primary (0 only for dev)."
  type        = number
  default     = 1
}

variable "log_retention_days" {
  description = "CloudWatch log retention in days."
  type        = number
  default     = 365
}

variable "deletion_protection" {
  description = "Protect the database and load balancer from deletion (off only for throw-away dev stacks)."
  type        = bool
  default     = true
}
