terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
  # Remote state in S3 with S3-native locking (use_lockfile, Terraform >= 1.10); the
  # bucket comes from ./bootstrap. Per environment:
  #   terraform init -backend-config=environments/staging.s3.tfbackend
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "pricehub"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
