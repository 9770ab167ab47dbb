//! The queue, as the consumer's loop uses it: SQS itself is `common::queue`'s (one wrapper
//! and one error type for both programs). Here is the small trait the loop works through, with
//! SQS and an in-memory queue behind it.

mod memory;
mod source;

pub use common::queue::{Inbox, QueueError, Received, MAX_BATCH};
pub use memory::{MemoryHold, MemoryQueue, Stored};
pub use source::{Held, UploadQueue};
