//! Which model trains when: the models side by side on the cores, each as
//! a head and a tail of work, within the memory budget.

use anyhow::{Context, Result};
use contract::{Dataset, Layout};

use crate::course::{Head, Outcome, Rows, train_head, train_tail};
use crate::{Args, Job, RunContext};

/// A model's estimated peak memory in train, in bytes: per row its numbers
/// (8 bytes a numeric feature, 4 a category code, 8 for the target and 8 for
/// its bucket), 8 for its place in the split, and about 48 for LightGBM's
/// binned dataset, gradients and scores on the training rows; 100 MiB
/// besides. Measured at 10M rows per table, each model alone: csat 1.85 GB
/// (estimate 1.98), quality 1.39 (1.37), performance 0.91 (0.94).
fn estimated_peak(dataset: Dataset, rows: usize) -> u64 {
    let per_row =
        8 * dataset.numeric_features().len() + 4 * dataset.categorical_features().len() + 72;
    (rows * per_row) as u64 + (100 << 20)
}

/// Trains the models side by side: under the passive OpenMP wait policy
/// (see `model::respawn_with_passive_openmp`) LightGBM uses a second core
/// poorly on these few features (1.1-1.4x at 1M rows, slower than one below
/// 400k rows; Python's LightGBM gains 1.7-2.0x with OpenMP's default spin,
/// but one model at a time then leaves a core idle in each model's tail and
/// train took 1.26-1.40x as long), so up to `--threads` workers (at most
/// three) share the models, each LightGBM fit with an equal share of the
/// threads. The share depends only on `--threads`, never on timing, on
/// `--only` or on memory: LightGBM's result depends on its thread count,
/// and the same seed must give the same model.
///
/// Each model is two pieces of work: its head (rows, split and the LightGBM
/// fit on all training rows, the longest single piece) and its tail
/// (model selection, the other candidates, held-out predictions, gate,
/// drift, the saved version). A worker takes a head before any tail, the
/// largest model first, then the largest tail ready: so the long fits start
/// early and the short tails fill the cores at the end. With whole models
/// per worker, three models on two cores left one core idle for the last
/// model (at 1M rows per table train took 1.13x as long).
///
/// A model starts (its head) only while the estimated peaks of the models
/// started and not yet finished, and its own, fit in the memory budget
/// (`--memory`); when none is started, the largest waiting model starts
/// whatever its size. Outcomes come back in `jobs` order.
pub(crate) fn train_side_by_side(
    args: &Args,
    layout: &Layout,
    context: &RunContext,
    jobs: &[Job],
) -> Vec<Result<Outcome>> {
    use std::sync::{Condvar, Mutex};

    let threads = args.threads();
    let workers = threads.clamp(1, Dataset::ALL.len());
    let share = (threads / workers).max(1);
    let budget = args.memory_budget();
    let peaks: Vec<u64> = jobs
        .iter()
        .map(|j| estimated_peak(j.dataset, j.rows))
        .collect();
    /// Where a model is in its course.
    enum Step {
        Waiting,
        Head,
        Ready(Box<Head>),
        Tail,
        Done,
    }
    enum Task {
        Head(usize),
        Tail(usize, Box<Head>),
    }
    /// Each model's step.
    struct Queue {
        steps: Vec<Step>,
    }
    impl Queue {
        /// The models started and not yet done.
        fn started(&self) -> impl Iterator<Item = usize> + '_ {
            (0..self.steps.len())
                .filter(|&i| matches!(self.steps[i], Step::Head | Step::Ready(_) | Step::Tail))
        }
    }
    // Largest first, for heads and tails alike.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].rows));
    let state = Mutex::new(Queue {
        steps: jobs.iter().map(|_| Step::Waiting).collect(),
    });
    let changed = Condvar::new();
    let outcomes: Vec<Mutex<Option<Result<Outcome>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = || -> Option<Task> {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let queue = &mut *guard;
            // The bytes the started models are estimated to hold.
            let held: u64 = queue.started().map(|i| peaks[i]).sum();
            let none_started = queue.started().next().is_none();
            let head = order.iter().copied().find(|&i| {
                matches!(queue.steps[i], Step::Waiting)
                    && (none_started || held.saturating_add(peaks[i]) <= budget)
            });
            if let Some(i) = head {
                queue.steps[i] = Step::Head;
                return Some(Task::Head(i));
            }
            let tail = order
                .iter()
                .copied()
                .find(|&i| matches!(queue.steps[i], Step::Ready(_)));
            if let Some(i) = tail {
                let Step::Ready(head) = std::mem::replace(&mut queue.steps[i], Step::Tail) else {
                    unreachable!("found ready")
                };
                return Some(Task::Tail(i, head));
            }
            // Nothing to take now: wait while a head still running will
            // leave a tail, or a waiting model may start when memory frees.
            if !queue
                .steps
                .iter()
                .any(|s| matches!(s, Step::Waiting | Step::Head))
            {
                return None;
            }
            guard = changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    };
    let finish = |i: usize, step: Step, outcome: Option<Result<Outcome>>| {
        if let Some(outcome) = outcome {
            *outcomes[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
        let mut queue = state.lock().unwrap_or_else(|e| e.into_inner());
        queue.steps[i] = step;
        changed.notify_all();
    };
    let training = |job: &Job| {
        let path = layout.clean(job.dataset);
        format!("training the {} model on {}", job.dataset, path.display())
    };
    let work = || {
        while let Some(task) = next() {
            match task {
                Task::Head(i) => {
                    let job = &jobs[i];
                    let head = caught(|| {
                        Rows::load(&layout.clean(job.dataset), job.dataset).and_then(|rows| {
                            train_head(args, share, layout, job, rows)
                                .with_context(|| training(job))
                        })
                    });
                    match head {
                        Ok(head) => finish(i, Step::Ready(Box::new(head)), None),
                        Err(e) => finish(i, Step::Done, Some(Err(e))),
                    }
                }
                Task::Tail(i, head) => {
                    let job = &jobs[i];
                    let outcome = caught(|| {
                        train_tail(args, share, layout, context, job, *head)
                            .with_context(|| training(job))
                    });
                    finish(i, Step::Done, Some(outcome));
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        // One worker is this thread.
        work();
    });
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(anyhow::anyhow!("not trained")))
        })
        .collect()
}

/// `f`'s result, or an error when it panicked (the panic's message is
/// already on stderr): a piece of work that panicked must still be marked
/// done, or the other workers would wait for its tail forever.
fn caught<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
}

#[cfg(test)]
mod tests {
    use anyhow::bail;

    use super::*;

    #[test]
    fn a_panicking_piece_of_work_becomes_an_error() {
        let panicked: Result<()> = caught(|| panic!("boom"));
        assert_eq!(panicked.unwrap_err().to_string(), "a worker panicked");
        assert_eq!(caught(|| Ok(7)).unwrap(), 7);
        let failed: Result<()> = caught(|| bail!("no rows"));
        assert_eq!(failed.unwrap_err().to_string(), "no rows");
    }
}
