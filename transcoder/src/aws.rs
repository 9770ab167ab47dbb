//! The AWS clients, from the standard environment: `AWS_REGION`, the default credential chain,
//! and `AWS_ENDPOINT_URL` for an emulator.

use crate::storage::S3Store;

/// S3, SQS and ECS clients sharing one configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    /// Sources and outputs.
    pub s3: S3Store,
    /// Queue messages the jobs own.
    pub sqs: aws_sdk_sqs::Client,
    /// Range tasks of split jobs.
    pub ecs: aws_sdk_ecs::Client,
}

impl Aws {
    /// Loads the configuration the way every AWS SDK does.
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        Self {
            s3: S3Store::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
        }
    }
}
