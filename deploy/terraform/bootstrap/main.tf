# Once per AWS account, with local state: the S3 bucket that holds every environment's
# state. Locking is S3-native (use_lockfile in ../versions.tf, Terraform >= 1.10): a
# lock object next to the state, so no DynamoDB table is needed.
terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

variable "bucket" {
  description = "Name of the state bucket (globally unique)."
  type        = string
  default     = "pricehub-terraform-state"
}

provider "aws" {
  region = var.region
}

resource "aws_kms_key" "state" {
  description             = "pricehub terraform state"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "Account"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

data "aws_caller_identity" "current" {}

resource "aws_s3_bucket" "state" {
  # checkov:skip=CKV_AWS_144:Cross-region replication of state is a disaster-recovery choice per organisation; versioning below keeps every past state.
  # checkov:skip=CKV_AWS_18:Access logging needs a second bucket; CloudTrail data events cover state access where required.
  # checkov:skip=CKV2_AWS_62:No consumer for event notifications on the state bucket.
  bucket = var.bucket
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "old-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

output "bucket" {
  description = "State bucket name (environments/*.s3.tfbackend)."
  value       = aws_s3_bucket.state.id
}
