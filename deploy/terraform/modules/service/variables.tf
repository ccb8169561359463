variable "name" {
  description = "Name prefix of every resource (pricehub-ENV); scripts/release.sh derives task and service names from it."
  type        = string
}

variable "environment" {
  description = "Environment name; the GitHub Environment the deploy role trusts."
  type        = string
}

variable "region" {
  description = "AWS region (log configuration)."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "vpc_cidr" {
  description = "VPC CIDR (egress of the load balancer to tasks)."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "task_sg_id" {
  description = "Security group of the tasks (from the network module)."
  type        = string
}

variable "image" {
  description = "Container image, by digest."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for log groups."
  type        = string
}

variable "secret_arns" {
  description = "Secrets Manager ARNs by environment variable name."
  type        = map(string)
}

variable "api_count" {
  description = "Desired (and minimum) API tasks."
  type        = number
}

variable "api_max_count" {
  description = "Maximum API tasks under autoscaling."
  type        = number
}

variable "api_cpu" {
  description = "CPU units of an API task."
  type        = number
}

variable "api_memory" {
  description = "Memory of an API task, MiB."
  type        = number
}

variable "log_days" {
  description = "Log retention, days."
  type        = number
}

variable "alarm_topic_arn" {
  description = "SNS topic alarms notify."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
}

variable "github_repository" {
  description = "owner/name allowed to assume the deploy role from its release workflow."
  type        = string
}
