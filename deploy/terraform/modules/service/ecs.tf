# ECS Fargate: the API behind the load balancer, the provider (found by the collector
# and the API through Cloud Map DNS), the collector, and the migration task the release
# workflow runs before every rollout (scripts/release.sh deploy).

locals {
  drain_delay      = 10
  shutdown_timeout = 30
  discovery        = "${var.name}.internal"
  environment = {
    PRICEHUB_LOG_FORMAT            = "json"
    PRICEHUB_MIGRATE               = "false"
    PRICEHUB_LISTEN                = "0.0.0.0:3000"
    PRICEHUB_DRAIN_DELAY           = tostring(local.drain_delay)
    PRICEHUB_SHUTDOWN_TIMEOUT      = tostring(local.shutdown_timeout)
    PRICEHUB_BTC_RATE_URL          = "http://provider.${local.discovery}:5556/v1/bpi/currentprice.json"
    PRICEHUB_PROVIDER_LISTEN       = "0.0.0.0:5555"
    PRICEHUB_PROVIDER_HTTP_LISTEN  = "0.0.0.0:5556"
    PRICEHUB_COLLECTOR_PROVIDER    = "provider.${local.discovery}:5555"
    PRICEHUB_COLLECTOR_HTTP_LISTEN = "0.0.0.0:5557"
    PRICEHUB_COLLECTOR_DATA_DIR    = "/var/lib/pricehub/collector"
    PRICEHUB_TRUSTED_PROXIES       = var.vpc_cidr
  }
  tasks = {
    api       = { args = ["serve"], port = 3000, cpu = var.api_cpu, memory = var.api_memory, secrets = ["DATABASE_URL", "REDIS_URL", "PRICEHUB_INGEST_TOKEN"] }
    provider  = { args = ["provider"], port = 5556, cpu = 256, memory = 512, secrets = [] }
    collector = { args = ["collector"], port = 5557, cpu = 512, memory = 1024, secrets = ["DATABASE_URL"] }
    migrate   = { args = ["migrate"], port = 0, cpu = 256, memory = 512, secrets = ["DATABASE_URL"] }
  }
}

resource "aws_ecs_cluster" "main" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enhanced"
  }
}

resource "aws_cloudwatch_log_group" "task" {
  for_each          = local.tasks
  name              = "/pricehub/${var.name}/${each.key}"
  retention_in_days = var.log_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_iam_role_policy" "execution" {
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = values(var.secret_arns)
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      },
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [for g in aws_cloudwatch_log_group.task : "${g.arn}:*"]
      },
    ]
  })
}

# pricehub calls no AWS API: its task role has no policy.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_ecs_task_definition" "main" {
  for_each                 = local.tasks
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "ARM64"
  }
  dynamic "volume" {
    for_each = each.key == "collector" ? ["spool"] : []
    content {
      name = volume.value
    }
  }
  container_definitions = jsonencode([{
    name                   = each.key
    image                  = var.image
    command                = each.value.args
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    stopTimeout            = local.drain_delay + local.shutdown_timeout + 5
    linuxParameters        = { capabilities = { drop = ["ALL"] }, initProcessEnabled = true }
    portMappings           = each.value.port == 0 ? [] : concat([{ containerPort = each.value.port, protocol = "tcp" }], each.key == "provider" ? [{ containerPort = 5555, protocol = "tcp" }] : [])
    environment            = [for k, v in local.environment : { name = k, value = v }]
    secrets                = [for s in each.value.secrets : { name = s, valueFrom = var.secret_arns[s] }]
    mountPoints            = each.key == "collector" ? [{ sourceVolume = "spool", containerPath = "/var/lib/pricehub/collector" }] : []
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.task[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
  # The release workflow registers new revisions with new digests; Terraform owns the shape.
  lifecycle {
    ignore_changes = [container_definitions]
  }
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name = local.discovery
  vpc  = var.vpc_id
}

resource "aws_service_discovery_service" "provider" {
  name = "provider"
  dns_config {
    namespace_id = aws_service_discovery_private_dns_namespace.main.id
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
}

resource "aws_ecs_service" "api" {
  name                               = "${var.name}-api"
  cluster                            = aws_ecs_cluster.main.id
  task_definition                    = aws_ecs_task_definition.main["api"].arn
  desired_count                      = var.api_count
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30
  propagate_tags                     = "SERVICE"
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.task_sg_id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = 3000
  }
  # A rollout whose tasks never turn healthy is rolled back by ECS itself, besides the
  # workflow's smoke-test rollback.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }
  depends_on = [aws_lb_listener.https]
}

# The provider (one market: one task, found by Cloud Map DNS) and the collector (one at a
# time: the old one stops, flushing on SIGTERM, before the new one starts).
resource "aws_ecs_service" "worker" {
  for_each = {
    provider  = { min_healthy = 100, max = 200, discovery = [aws_service_discovery_service.provider.arn] }
    collector = { min_healthy = 0, max = 100, discovery = [] }
  }
  name                               = "${var.name}-${each.key}"
  cluster                            = aws_ecs_cluster.main.id
  task_definition                    = aws_ecs_task_definition.main[each.key].arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = each.value.min_healthy
  deployment_maximum_percent         = each.value.max
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.task_sg_id]
    assign_public_ip = false
  }
  dynamic "service_registries" {
    for_each = each.value.discovery
    content {
      registry_arn = service_registries.value
    }
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    ignore_changes = [task_definition]
  }
}

resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.api_count
  max_capacity       = var.api_max_count
}

resource "aws_appautoscaling_policy" "api_cpu" {
  name               = "${var.name}-api-cpu"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension
  policy_type        = "TargetTrackingScaling"
  target_tracking_scaling_policy_configuration {
    target_value       = 65
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Tasks: the load balancer reaches the API; tasks reach each other (provider feed and
# rates); out to the VPC (database, Redis, discovery) and HTTPS (image pulls, AWS APIs).
resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = var.task_sg_id
  description                  = "API from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 3000
  to_port                      = 3000
}

resource "aws_vpc_security_group_ingress_rule" "tasks_internal" {
  security_group_id            = var.task_sg_id
  description                  = "Provider feed and side port from the collector and API"
  referenced_security_group_id = var.task_sg_id
  ip_protocol                  = "tcp"
  from_port                    = 5555
  to_port                      = 5557
}

resource "aws_vpc_security_group_egress_rule" "tasks_vpc" {
  security_group_id = var.task_sg_id
  description       = "Database, Redis, provider and DNS inside the VPC"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = 53
  to_port           = 6379
}

resource "aws_vpc_security_group_egress_rule" "tasks_dns" {
  security_group_id = var.task_sg_id
  description       = "DNS (VPC resolver)"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "udp"
  from_port         = 53
  to_port           = 53
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = var.task_sg_id
  description       = "HTTPS: image registry and AWS APIs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
