//! One thread owns the connection and runs every call, with group commit.
//!
//! Calls queue on a channel. The thread takes what has queued (up to [`MAX_BATCH`] calls),
//! opens one `BEGIN IMMEDIATE` transaction, runs each call inside its own savepoint (a call that
//! fails is rolled back to it, and only its writes are lost), commits once, and only then answers
//! every call of the batch. With `synchronous=FULL` the commit is one `fsync` of the WAL, shared
//! by everything in the batch, so a caller never learns of a write that a power cut could undo.
//! A failed `BEGIN` or `COMMIT` answers every call of the batch with that error, and nothing of
//! the batch is kept.
//!
//! Invariants: calls run in the order they were queued, one at a time, on this thread only; a
//! call sees the writes of the calls before it in its batch; no answer leaves before its batch
//! committed.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use rusqlite::Connection;

use crate::StoreError;

/// The most calls one transaction carries: bounds the work a failed commit throws away and the
/// wait of the last call in a batch.
const MAX_BATCH: usize = 64;

/// A queued call, run by the thread.
trait Call: Send {
    /// Runs the call on the open transaction; what it returns answers the caller once the
    /// batch's commit is known.
    fn run(self: Box<Self>, conn: &mut Connection) -> Box<dyn Answer>;
    /// Answers the caller without running, with the reason its batch's transaction failed.
    fn refuse(self: Box<Self>, error: &str);
}

/// A call's result, held until its batch commits.
trait Answer: Send {
    /// Whether the call failed, so that its savepoint is rolled back.
    fn failed(&self) -> bool;
    /// Sends the result, or `commit`'s error if the batch did not commit.
    fn send(self: Box<Self>, commit: Result<(), &str>);
}

struct Queued<T, F> {
    work: F,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

struct Pending<T> {
    result: Result<T, StoreError>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Call for Queued<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Box<dyn Answer> {
        let Queued { work, reply } = *self;
        // A panic fails this call only (its savepoint is rolled back); the thread, and every
        // other caller, carry on.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a storage call panicked".into())));
        Box::new(Pending { result, reply })
    }

    fn refuse(self: Box<Self>, error: &str) {
        // The caller may have stopped waiting; then nobody needs the answer.
        let _ = self.reply.send(Err(StoreError::Backend(error.to_string())));
    }
}

impl<T: Send> Answer for Pending<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn send(self: Box<Self>, commit: Result<(), &str>) {
        let result = match commit {
            Ok(()) => self.result,
            Err(error) => Err(StoreError::Backend(error.to_string())),
        };
        let _ = self.reply.send(result);
    }
}

/// The handle to the thread: dropping the last one ends it, after the calls already queued.
pub(super) struct Writer {
    calls: mpsc::Sender<Box<dyn Call>>,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub(super) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (calls, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("medgate-sqlite".into())
            .spawn(move || serve(conn, queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite thread: {e}")))?;
        Ok(Writer { calls })
    }

    /// Runs `work` on the thread, inside the next batch's transaction, and returns its result
    /// once that transaction committed.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Backend("the SQLite thread has stopped".into());
        self.calls
            .send(Box::new(Queued { work, reply }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn serve(mut conn: Connection, queue: mpsc::Receiver<Box<dyn Call>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(call) => batch.push(call),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
}

/// Runs one transaction-control statement; its error is what every call of the batch is told.
fn statement(conn: &Connection, sql: &str) -> Result<(), String> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(|e| e.to_string())
}

fn run_batch(conn: &mut Connection, batch: Vec<Box<dyn Call>>) {
    if let Err(error) = statement(conn, "BEGIN IMMEDIATE") {
        for call in batch {
            call.refuse(&error);
        }
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut broken: Option<String> = None;
    for call in batch {
        if let Some(error) = &broken {
            call.refuse(error);
            continue;
        }
        if let Err(error) = statement(conn, "SAVEPOINT call") {
            call.refuse(&error);
            broken = Some(error);
            continue;
        }
        let answer = call.run(conn);
        let end = if answer.failed() {
            statement(conn, "ROLLBACK TO call").and_then(|()| statement(conn, "RELEASE call"))
        } else {
            statement(conn, "RELEASE call")
        };
        if let Err(error) = end {
            broken = Some(error);
        }
        answers.push(answer);
    }
    let commit = match broken {
        Some(error) => Err(error),
        None => statement(conn, "COMMIT"),
    };
    if commit.is_err() && !conn.is_autocommit() {
        // Nothing of the batch is kept; a failed rollback leaves the next BEGIN to fail loudly.
        let _ = statement(conn, "ROLLBACK");
    }
    for answer in answers {
        answer.send(commit.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    type Reply = oneshot::Receiver<Result<(), StoreError>>;

    fn connection() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id));
             INSERT INTO parent (id) VALUES (1);",
        )
        .expect("schema");
        conn
    }

    fn call<F>(work: F) -> (Box<dyn Call>, Reply)
    where
        F: FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        (Box::new(Queued { work, reply }), answer)
    }

    fn insert_child(
        id: i64,
        parent: i64,
    ) -> impl FnOnce(&mut Connection) -> Result<(), StoreError> {
        move |conn| {
            conn.execute(
                "INSERT INTO child (id, parent) VALUES (?1, ?2)",
                [id, parent],
            )
            .map(drop)
            .map_err(|e| StoreError::Backend(e.to_string()))
        }
    }

    fn children(conn: &Connection) -> Vec<i64> {
        let mut statement = conn.prepare("SELECT id FROM child ORDER BY id").unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn answer(mut reply: Reply) -> Result<(), StoreError> {
        reply.try_recv().expect("answered when its batch ended")
    }

    #[test]
    fn a_failed_or_panicking_call_loses_only_its_own_writes() {
        let mut conn = connection();
        let (first, first_reply) = call(insert_child(10, 1));
        let (failing, failing_reply) = call(|conn| {
            insert_child(20, 1)(conn)?;
            Err(StoreError::Conflict("refused after writing"))
        });
        let (panicking, panicking_reply) = call(|conn| {
            insert_child(30, 1)(conn)?;
            panic!("a bug in a call");
        });
        let (sees_first, sees_first_reply) = call(|conn| {
            // A call sees what the calls before it in its batch wrote.
            assert_eq!(children(conn), vec![10]);
            insert_child(40, 1)(conn)
        });
        run_batch(&mut conn, vec![first, failing, panicking, sees_first]);

        assert!(answer(first_reply).is_ok());
        assert!(matches!(
            answer(failing_reply),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            answer(panicking_reply),
            Err(StoreError::Backend(_))
        ));
        assert!(answer(sees_first_reply).is_ok());
        assert!(conn.is_autocommit(), "the batch's transaction ended");
        assert_eq!(children(&conn), vec![10, 40]);
    }

    #[test]
    fn a_failed_commit_fails_every_call_and_keeps_nothing() {
        let mut conn = connection();
        let (fine, fine_reply) = call(insert_child(10, 1));
        // A foreign key checked only at COMMIT: the savepoint is released, the commit fails.
        let (dangling, dangling_reply) = call(|conn| {
            conn.execute_batch("PRAGMA defer_foreign_keys = ON")
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            insert_child(20, 99)(conn)
        });
        run_batch(&mut conn, vec![fine, dangling]);

        for reply in [fine_reply, dangling_reply] {
            let error = answer(reply).unwrap_err();
            assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
        }
        assert!(
            conn.is_autocommit(),
            "the failed transaction was rolled back"
        );
        assert!(children(&conn).is_empty());

        // The next batch starts cleanly.
        let (after, after_reply) = call(insert_child(30, 1));
        run_batch(&mut conn, vec![after]);
        assert!(answer(after_reply).is_ok());
        assert_eq!(children(&conn), vec![30]);
    }

    #[test]
    fn every_call_queued_through_the_handle_is_answered_and_kept() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let writer = std::sync::Arc::new(Writer::start(connection()).unwrap());
        runtime.block_on(async {
            let mut calls = tokio::task::JoinSet::new();
            for id in 100..300 {
                let writer = std::sync::Arc::clone(&writer);
                calls.spawn(async move { writer.run(insert_child(id, 1)).await });
            }
            while let Some(result) = calls.join_next().await {
                result.unwrap().unwrap();
            }
            let seen = writer.run(|conn| Ok(children(conn))).await.unwrap();
            assert_eq!(seen, (100..300).collect::<Vec<_>>());
        });
    }
}
