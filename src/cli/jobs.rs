//! `jobs stats|dead|retry`: the job queue, from the shell.

use clap::Subcommand;
use commerce_gateway::config::Config;
use commerce_gateway::jobs;
use diesel_async::{AsyncConnection, AsyncPgConnection};

#[derive(Subcommand)]
pub enum JobsAction {
    /// Jobs per queue and state, with the age of the oldest.
    Stats,
    /// List dead jobs (those that used up their attempts).
    Dead {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead jobs back in their queue with fresh attempts.
    Retry {
        /// Job ids to retry.
        ids: Vec<i64>,
        /// Retry every dead job.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

pub async fn run(action: JobsAction) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
    match action {
        JobsAction::Stats => {
            println!(
                "{:<10} {:<8} {:>8} {:>12}",
                "queue", "state", "jobs", "oldest (s)"
            );
            for s in jobs::stats(&mut conn).await? {
                println!(
                    "{:<10} {:<8} {:>8} {:>12.1}",
                    s.queue, s.state, s.jobs, s.oldest_age_seconds
                );
            }
        }
        JobsAction::Dead { limit } => {
            for j in jobs::list(&mut conn, "dead", limit).await? {
                println!(
                    "{}\t{}\t{}\tattempts {}/{}\t{}",
                    j.id,
                    j.queue,
                    j.kind,
                    j.attempts,
                    j.max_attempts,
                    j.last_error.unwrap_or_default()
                );
            }
        }
        JobsAction::Retry { ids, all } => {
            if ids.is_empty() && !all {
                anyhow::bail!("name job ids to retry, or pass --all");
            }
            let n = jobs::retry_dead(&mut conn, (!all).then_some(ids.as_slice())).await?;
            println!("requeued {n} dead job(s)");
        }
    }
    Ok(())
}
