output "base_url" {
  description = "HTTPS address of the load balancer (point DNS at it; the smoke test runs against it)."
  value       = "https://${module.service.alb_dns_name}"
}

output "ecs_cluster" {
  description = "ECS cluster name (scripts/release.sh: PRICEHUB_ECS_CLUSTER)."
  value       = module.service.cluster_name
}

output "deploy_role_arn" {
  description = "Role the release workflow assumes by GitHub OIDC (repository variable AWS_DEPLOY_ROLE_ARN)."
  value       = module.service.deploy_role_arn
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (the connection URL itself is in Secrets Manager)."
  value       = module.data.db_endpoint
}
