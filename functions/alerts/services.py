"""The hand-kept map from Cost Explorer's SERVICE names to the AWS services (botocore's service
names) whose API calls can create or grow that cost. "What changed" ranks an anomaly's
CloudTrail write events by it, with each service's operation names (`operations.json`,
generated from botocore's service models by `python -m devstack.gen_operations`; a test
regenerates it and compares).

Keep it to names Cost Explorer really shows (the console's "Service" filter); a name missing
here ranks every event as "other". Several names can map to one service (EC2's compute, its
"EC2 - Other" storage and transfer, and the VPC's NAT gateways are all ec2 calls).
"""

from __future__ import annotations

CE_SERVICES: dict[str, tuple[str, ...]] = {
    "Amazon Elastic Compute Cloud - Compute": ("ec2", "autoscaling"),
    "EC2 - Other": ("ec2",),
    "Amazon EC2 Container Registry (ECR)": ("ecr",),
    "Amazon Elastic Container Service": ("ecs",),
    "Amazon Elastic Container Service for Kubernetes": ("eks",),
    "Amazon Elastic Kubernetes Service": ("eks",),
    "Amazon Elastic Load Balancing": ("elbv2", "elb"),
    "Amazon Virtual Private Cloud": ("ec2",),
    "Amazon Elastic File System": ("efs",),
    "Amazon Simple Storage Service": ("s3",),
    "Amazon Relational Database Service": ("rds",),
    "Amazon DynamoDB": ("dynamodb",),
    "Amazon ElastiCache": ("elasticache",),
    "Amazon Redshift": ("redshift",),
    "Amazon OpenSearch Service": ("opensearch", "es"),
    "AWS Lambda": ("lambda",),
    "Amazon API Gateway": ("apigateway", "apigatewayv2"),
    "Amazon CloudFront": ("cloudfront",),
    "Amazon Route 53": ("route53",),
    "AmazonCloudWatch": ("cloudwatch", "logs"),
    "Amazon Kinesis": ("kinesis",),
    "Amazon Kinesis Firehose": ("firehose",),
    "Amazon Simple Queue Service": ("sqs",),
    "Amazon Simple Notification Service": ("sns",),
    "AWS Step Functions": ("stepfunctions",),
    "AWS Glue": ("glue",),
    "Amazon Athena": ("athena",),
    "Amazon EMR": ("emr",),
    "Amazon SageMaker": ("sagemaker",),
    "Amazon Bedrock": ("bedrock",),
    "AWS Key Management Service": ("kms",),
    "AWS Secrets Manager": ("secretsmanager",),
    "AWS Backup": ("backup",),
    "Amazon Lightsail": ("lightsail",),
    "AWS Database Migration Service": ("dms",),
    "Amazon MQ": ("mq",),
    "Amazon Managed Streaming for Apache Kafka": ("kafka",),
    "AWS Fargate": ("ecs", "eks"),
    "Amazon GuardDuty": ("guardduty",),
    "AWS Config": ("config",),
    "AWS CloudTrail": ("cloudtrail",),
    "AWS WAF": ("wafv2", "waf"),
}


def botocore_services() -> list[str]:
    """Every botocore service the map names (what operations.json holds), sorted."""
    return sorted({s for names in CE_SERVICES.values() for s in names})
