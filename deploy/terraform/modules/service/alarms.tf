# Alarms on the signals that mean users are hurt or soon will be: server errors, slow
# answers, no healthy API task, saturated CPU, a database running out of room.

locals {
  alarms = {
    api-5xx = {
      namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", stat = "Sum", threshold = 10, op = "GreaterThanThreshold"
      dimensions = { LoadBalancer = aws_lb.api.arn_suffix, TargetGroup = aws_lb_target_group.api.arn_suffix }
      help       = "The API answered more than 10 server errors in a minute"
    }
    api-latency = {
      namespace = "AWS/ApplicationELB", metric = "TargetResponseTime", stat = "p99", threshold = 1, op = "GreaterThanThreshold"
      dimensions = { LoadBalancer = aws_lb.api.arn_suffix, TargetGroup = aws_lb_target_group.api.arn_suffix }
      help       = "p99 API latency above 1 s"
    }
    api-no-healthy-task = {
      namespace = "AWS/ApplicationELB", metric = "HealthyHostCount", stat = "Minimum", threshold = 1, op = "LessThanThreshold"
      dimensions = { LoadBalancer = aws_lb.api.arn_suffix, TargetGroup = aws_lb_target_group.api.arn_suffix }
      help       = "No API task passes /readyz"
    }
    api-cpu = {
      namespace = "AWS/ECS", metric = "CPUUtilization", stat = "Average", threshold = 85, op = "GreaterThanThreshold"
      dimensions = { ClusterName = aws_ecs_cluster.main.name, ServiceName = aws_ecs_service.api.name }
      help       = "API CPU above 85% even with autoscaling"
    }
    collector-down = {
      namespace = "ECS/ContainerInsights", metric = "RunningTaskCount", stat = "Minimum", threshold = 1, op = "LessThanThreshold"
      dimensions = { ClusterName = aws_ecs_cluster.main.name, ServiceName = aws_ecs_service.worker["collector"].name }
      help       = "No collector is running: the live feed is not being stored"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "main" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.help
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = contains(["Sum", "Average", "Minimum", "Maximum"], each.value.stat) ? each.value.stat : null
  extended_statistic  = contains(["Sum", "Average", "Minimum", "Maximum"], each.value.stat) ? null : each.value.stat
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = each.value.threshold
  comparison_operator = each.value.op
  treat_missing_data  = "breaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
