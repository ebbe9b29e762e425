/*-------------------------------------------------------------------------
 *
 * stellapack.h
 *	  What the parts of the extension share: settings, the shared-memory
 *	  state of the launcher and its executors, and the entry points each
 *	  part exports to the others.
 *
 * The manifest module (manifest.h) is not here: it is plain C with no
 * server headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STELLAPACK_H
#define STELLAPACK_H

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/uuid.h"

/* settings */
extern char *sp_database;
extern int	sp_max_workers;
extern int	sp_runner_slice_ms;
extern char *sp_tenant;

#define SP_JOB_NAME_LEN		64
#define SP_MAX_WAITERS		256
#define SP_MQ_SIZE			(64 * 1024)

/* message types an executor sends its relay, besides 'N' and 'E' */
#define SP_MSG_CONTEXT		'C'		/* run id + job name: lines that follow */
#define SP_MSG_LOG			'L'		/* an explicit stellapack.log() line */
#define SP_MSG_SYNC			'Z'		/* ack once everything before is stored */
#define SP_MSG_NOTIFY		'A'		/* channel + payload to NOTIFY, committed */

typedef enum SpSlotState
{
	SP_SLOT_FREE = 0,
	SP_SLOT_STARTING,
	SP_SLOT_IDLE,
	SP_SLOT_RUNNING
} SpSlotState;

/*
 * One executor of the pool.  Written by the executor itself except where
 * noted; read by anyone under the mutex.
 */
typedef struct SpSlot
{
	SpSlotState state;
	pid_t		pid;
	PGPROC	   *proc;			/* whose latch wakes it */
	bool		idle;			/* waiting for work (a wake clears it) */
	dsm_handle	mq_handle;		/* set by the launcher */
	pg_uuid_t	run_id;			/* what it runs, when RUNNING */
	char		job[SP_JOB_NAME_LEN];
	TimestampTz since;
	bool		cancel;			/* set by a canceling backend */
	uint64		sync_ack;		/* set by the relay */
} SpSlot;

typedef struct SpShared
{
	slock_t		mutex;
	PGPROC	   *launcher;		/* relay and timers */
	pid_t		launcher_pid;
	bool		tick_requested; /* a commit changed the launcher's timers */
	int			nslots;
	PGPROC	   *waiters[SP_MAX_WAITERS];	/* in pack_run_wait() */
	SpSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} SpShared;

extern SpShared *sp_shared;

/* stellapack.c */
extern void sp_wake_executors(int n);
extern bool sp_extension_exists(void);
extern char *sp_current_tenant(void);
extern void sp_wake_waiters_at_commit(void);

/* executor.c */
extern PGDLLEXPORT void sp_executor_main(Datum arg);
extern Oid	sp_job_role;
extern bool sp_in_job(pg_uuid_t *run_id, const char **job);
extern void sp_executor_send(char msgtype, const char *data, Size len);
extern void sp_defer_log(const char *message, const char *data_json);
extern bool sp_is_executor;
extern void sp_executor_announce(const char *channel, const char *payload);

/* announce.c */
extern void sp_announce(const char *channel, const char *payload);
extern Size sp_announce_shmem_size(void);
extern void sp_announce_shmem_init(void);
extern bool sp_announce_drain(void);
extern void sp_notify_pairs(const char *p, const char *end);
extern void sp_notify_in_own_xact(const char *p, const char *end);
extern void sp_append_pair(StringInfo buf, bool *ready, const char *channel,
						   const char *payload);

/* launcher.c */
extern bool sp_is_launcher;
extern PGDLLEXPORT void sp_supervisor_main(Datum arg);
extern PGDLLEXPORT void sp_launcher_main(Datum arg);

/* stream.c */
typedef struct SpLogLine
{
	const char *job;			/* NULL for run-level lines */
	const char *level;
	const char *stream;
	const char *message;
	const char *data;			/* JSON text or NULL */
} SpLogLine;

extern int64 sp_log_store(pg_uuid_t *run_id, SpLogLine *lines, int n);
extern int64 sp_log_store_runs(pg_uuid_t *runs, SpLogLine *lines, int n);
extern bool sp_valid_level(const char *level);

/* a claimed job, owned by the executor between claim and outcome */
typedef struct SpClaim
{
	pg_uuid_t	run_id;
	char		job[SP_JOB_NAME_LEN];
	char		role[NAMEDATALEN];
	char	   *tenant;			/* in TopMemoryContext */
	char	   *command;		/* in TopMemoryContext */
	int64		timeout_ms;		/* 0: none */
	int			attempt;
} SpClaim;

/* engine.c */
extern bool sp_claim_sql(const char *worker, SpClaim *c);
typedef enum SpEnd
{
	SP_END_NOT_RUNNING,			/* not recorded: the job is not running */
	SP_END_DONE,				/* recorded */
	SP_END_TOOK_NEXT			/* recorded, and the next job claimed */
} SpEnd;

/*
 * The name of run $1's first queued job, in manifest order, that meets
 * "cond" (on job row "q"): the job a claim of one run takes, an
 * executor's or a runner's.  SP_EXTERNAL_IN_QUEUES is the runners' cond,
 * for the queues in text[] parameter "param" (all when it is NULL).
 */
#define SP_RUN_FIRST_QUEUED(cond) \
	"(SELECT q.job FROM stellapack_internal.job_run q" \
	"  WHERE q.run_id = $1 AND q.status = 'queued'" \
	"    AND q.not_before IS NULL AND " cond \
	"  ORDER BY q.ordinal LIMIT 1)"
#define SP_EXTERNAL_IN_QUEUES(param) \
	"q.kind = 'external'" \
	" AND (" param "::text[] IS NULL OR q.queue = ANY (" param "))"

/*
 * What a runner completing a job asks of its run's next job: the queues it
 * takes (queues_null: all) and the lease to give (an interval).  The lease
 * row of the job taken (lease_id, job_run_id, run_id, job, spec, inputs,
 * attempt, lease_expires_at, as job_claim() returns it) comes back in row
 * and nulls.
 */
#define SP_LEASE_COLUMNS	8
typedef struct SpLeaseNext
{
	Datum		queues;
	bool		queues_null;
	Datum		lease;
	Datum		row[SP_LEASE_COLUMNS];
	bool		nulls[SP_LEASE_COLUMNS];
} SpLeaseNext;

extern SpEnd sp_job_succeeded(SpClaim *c, pg_uuid_t *lease,
							  const char *result, List *lines, bool stay,
							  const char *worker, SpClaim *next,
							  SpLeaseNext *ln);
extern void sp_engine_call(const char *function, pg_uuid_t *run_id,
						   const char *job);
/* a run that sp_runs_finish ended, with its "run finished" line */
typedef struct SpRunEnd
{
	pg_uuid_t	run;
	char	   *status;
	char	   *tenant;
	SpLogLine	line;
} SpRunEnd;

extern int	sp_runs_finish(pg_uuid_t *runs, int n, SpRunEnd *ends);
extern void sp_runs_announce(SpRunEnd *ends, int n);
extern void sp_run_finish(pg_uuid_t *run_id);
extern void sp_run_ended(pg_uuid_t *run_id, bool late);
extern void sp_started_line(SpClaim *c, const char *where, SpLogLine *line);
extern void sp_succeeded_line(const char *job, int attempt, int64 elapsed,
							  SpLogLine *line);
extern SPIPlanPtr sp_prepare_kept(const char *sql, int nargs, Oid *types);
extern void sp_copy_row(HeapTuple tup, TupleDesc desc, int first, int n,
						Datum *values, bool *nulls);
extern int	sp_execute_indexed(SPIPlanPtr plan, Datum *args, const char *nulls);
extern SPIPlanPtr sp_prepare_kept_opt(const char *sql, int nargs, Oid *types,
									  int options);
extern void sp_claim_clear(SpClaim *c);
extern void sp_event(pg_uuid_t *run_id, const char *job, const char *status,
					 const char *tenant);


#endif							/* STELLAPACK_H */
