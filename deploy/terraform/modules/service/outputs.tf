output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.api.dns_name
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.main.name
}

output "deploy_role_arn" {
  description = "Role for the release workflow (GitHub OIDC)."
  value       = aws_iam_role.deploy.arn
}
