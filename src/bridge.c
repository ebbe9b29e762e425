/*-------------------------------------------------------------------------
 *
 * bridge.c
 *	  The task-runner bridge's hot calls in C: job_claim(), which leases
 *	  runnable external jobs to a runner, job_complete(), which records a
 *	  lease's outcome, and job_complete_many(), which records a batch of
 *	  successes.  A single job and a batch take different statements: one
 *	  job is cheapest through small statements on one run (lease_one,
 *	  sp_job_succeeded), a batch through set-based statements over all of
 *	  its runs (lease_jobs, complete_leases).  Every refusal (unknown, ended
 *	  or expired lease, canceled run) and every failure goes through the
 *	  SQL functions, which raise the errors a runner acts on.
 *
 * Heartbeats, log lines and artifacts of runners stay in SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "stellapack.h"

#define SP_ROW_COLUMNS		16	/* of the job_runs view */
#define SP_MAX_BATCH		1000

/* a condition on a job row "jr": its run can take one more job now */
#define SP_RUN_HAS_ROOM \
	"EXISTS (SELECT FROM stellapack_internal.run y" \
	"         WHERE y.id = jr.run_id AND y.running < y.max_parallel" \
	"           AND NOT y.cancel_requested AND NOT y.halted)"

/*
 * a job row "jr" in the queue index (job_run_external), whose predicate
 * says "queue IS NOT NULL" so that only statements saying it too, the
 * claims' reads in queue order, can use it: a plan made without statistics
 * once read the whole index to find the queued jobs of one run
 */
#define SP_IN_QUEUE_INDEX \
	"jr.status = 'queued' AND jr.kind = 'external'" \
	" AND jr.not_before IS NULL AND jr.queue IS NOT NULL"

static SPIPlanPtr candidates_plans[2];	/* without, with the room filter */
static SPIPlanPtr lease_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr complete_plan = NULL;
static SPIPlanPtr row_plan = NULL;

/*
 * The run this backend's runner may go on with, and since when: a runner
 * that finishes a job takes its run's next job only for
 * stellapack.runner_slice from the claim that gave it the run's first (see
 * in_slice).  Its default, 50 ms, is longer than an executor's 5 ms: a
 * runner's claim is a round of statements where going on is part of the
 * success statement, and at 5 ms the claims cost 15 % of one-call
 * throughput with no-op jobs (50 ms: 2 to 5 %, about the noise).  A
 * command that runs longer than the slice ends it at each completion.
 */
static pg_uuid_t slice_run;
static TimestampTz slice_start = 0;

/*
 * in_slice tells whether a runner that finished a job of "run" may go on
 * with the run's next one: within its slice, as an executor does, so that
 * a long run does not keep a runner from runs whose jobs come earlier in
 * the queue.  A slice that has ended is dropped; the runner's next claim
 * starts another.
 */
static bool
in_slice(const pg_uuid_t *run)
{
	if (sp_runner_slice_ms == 0 ||
		memcmp(&slice_run, run, sizeof(pg_uuid_t)) != 0)
		return false;
	if (!TimestampDifferenceExceeds(slice_start, GetCurrentTimestamp(),
									sp_runner_slice_ms))
		return true;
	memset(&slice_run, 0, sizeof(slice_run));
	return false;
}

/*
 * interval_compare compares an interval with an interval constant.
 */
static int
interval_compare(Interval *iv, const char *text)
{
	Datum		other;

	other = DirectFunctionCall3(interval_in, CStringGetDatum(text),
								ObjectIdGetDatum(InvalidOid),
								Int32GetDatum(-1));

	return DatumGetInt32(DirectFunctionCall2(interval_cmp,
											 IntervalPGetDatum(iv), other));
}

/*
 * hand_out puts n leased jobs, rows of a lease statement (lease_id, id,
 * run_id, job, spec, inputs, attempt, lease_expires_at, and the run's
 * status before the lease), into the result set, stores their "started"
 * lines, and queues their events (a run's own first, when the lease
 * started it).  The rows come ordered by run.
 */
static void
hand_out(SPITupleTable *rows, int n, const char *tenant, const char *worker,
		 ReturnSetInfo *rsinfo, MemoryContext per_query)
{
	pg_uuid_t  *runs = palloc(sizeof(pg_uuid_t) * n);
	SpLogLine  *lines = palloc(sizeof(SpLogLine) * n);
	char	   *where = psprintf("runner %s", worker);
	int			i;

	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = rows->vals[i];
		Datum		values[SP_LEASE_COLUMNS];
		bool		isnull[SP_LEASE_COLUMNS];
		MemoryContext old = MemoryContextSwitchTo(per_query);
		SpClaim		c;

		/* the row, where the result set lives */
		sp_copy_row(tup, rows->tupdesc, 1, SP_LEASE_COLUMNS, values, isnull);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 isnull);
		MemoryContextSwitchTo(old);

		memset(&c, 0, sizeof(c));
		memcpy(&runs[i], DatumGetUUIDP(values[2]), sizeof(pg_uuid_t));
		c.run_id = runs[i];
		strlcpy(c.job, SPI_getvalue(tup, rows->tupdesc, 4), SP_JOB_NAME_LEN);
		c.attempt = DatumGetInt32(values[6]);
		sp_started_line(&c, where, &lines[i]);
		if ((i == 0 || memcmp(&runs[i - 1], &runs[i], UUID_LEN) != 0) &&
			strcmp(SPI_getvalue(tup, rows->tupdesc, 9), "pending") == 0)
			sp_event(&runs[i], NULL, "running", tenant);
		sp_event(&runs[i], lines[i].job, "running", tenant);
	}
	sp_log_store_runs(runs, lines, n);

	/* a slice starts with a claim (of the last run when there are several) */
	slice_run = runs[n - 1];
	slice_start = GetCurrentTimestamp();
}

/*
 * lease_one tries to lease the first queued job, in manifest order, of run
 * "run" in the queues (all when queues_null) to a runner: the run is
 * locked with SKIP LOCKED (a claimer never waits for another) and must
 * have room under max_parallel; the job must still be queued on the row's
 * latest version.  On success the job is handed out (hand_out) and true is
 * returned.
 */
static bool
lease_one(Datum run, Datum queues, bool queues_null, const char *tenant,
		  const char *worker, Datum lease, ReturnSetInfo *rsinfo,
		  MemoryContext per_query)
{
	Datum		args[4];
	char		nulls[4] = "    ";

	if (lease_plan == NULL)
	{
		Oid			types[4] = {UUIDOID, TEXTARRAYOID, TEXTOID, INTERVALOID};

		lease_plan = sp_prepare_kept(
			"WITH r AS ("
			"  SELECT status, inputs FROM stellapack_internal.run"
			"   WHERE id = $1 AND running < max_parallel"
			"     AND NOT cancel_requested AND NOT halted"
			"     FOR UPDATE SKIP LOCKED),"
			" j AS ("
			"  UPDATE stellapack_internal.job_run jr"
			"     SET status = 'running', attempt = jr.attempt + 1,"
			"         started_at = clock_timestamp(), finished_at = NULL,"
			"         worker = $3, lease_id = gen_random_uuid(),"
			"         lease_expires_at = clock_timestamp() + $4,"
			"         lease_ms = (1000 * extract(epoch FROM $4))::bigint"
			"   WHERE EXISTS (SELECT FROM r) AND jr.run_id = $1"
			"     AND jr.status = 'queued' AND jr.not_before IS NULL"
			"     AND jr.job = "
			SP_RUN_FIRST_QUEUED(SP_EXTERNAL_IN_QUEUES("$2"))
			"  RETURNING jr.lease_id, jr.id, jr.job, jr.spec, jr.attempt,"
			"            jr.lease_expires_at),"
			" u AS ("
			"  UPDATE stellapack_internal.run x"
			"     SET running = x.running + 1, status = 'running',"
			"         started_at = coalesce(x.started_at, clock_timestamp())"
			"    FROM j WHERE x.id = $1"
			"  RETURNING x.id)"
			" SELECT j.lease_id, j.id, $1, j.job, j.spec, r.inputs, j.attempt,"
			"        j.lease_expires_at, r.status"
			"   FROM r, j, u",
			4, types);
	}
	args[0] = run;
	args[1] = queues;
	nulls[1] = queues_null ? 'n' : ' ';
	args[2] = CStringGetTextDatum(worker);
	args[3] = lease;
	if (SPI_execute_plan(lease_plan, args, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lease a job");
	if (SPI_processed != 1)
		return false;
	hand_out(SPI_tuptable, 1, tenant, worker, rsinfo, per_query);
	return true;
}

/*
 * claim_one leases one runnable external job of the queues (all when
 * queues is null) of a tenant to a runner; returns whether it did.
 * The runs of the first 32 queued jobs in the order of the queue index
 * (each run's first jobs before anyone's later ones) are read without
 * locks, with a snapshot that sees what the call wrote before (a job that
 * job_complete_and_claim released), and tried in a random order, so that
 * concurrent runners spread over them; each gives its first queued job in
 * manifest order (lease_one), and one whose jobs other runners took
 * meanwhile is passed over.  With "with_room", only jobs of runs below
 * their max_parallel are read (see claim_rounds).
 */
static bool
claim_one(Datum queues, bool queues_null, const char *tenant,
		  const char *worker, Datum lease, bool with_room,
		  ReturnSetInfo *rsinfo, MemoryContext per_query)
{
	Datum		args[2];
	char		nulls[2] = "  ";
	SPITupleTable *cands;
	uint64		ncands;
	uint64		k;

	/* two statements, so that each keeps a plan of its own */
	if (candidates_plans[with_room] == NULL)
	{
		Oid			types[2] = {TEXTARRAYOID, TEXTOID};

		candidates_plans[with_room] = sp_prepare_kept(psprintf(
			"SELECT c.run_id FROM ("
			"  SELECT jr.run_id FROM stellapack_internal.job_run jr"
			"   WHERE " SP_IN_QUEUE_INDEX
			"     AND ($1::text[] IS NULL OR jr.queue = ANY ($1))"
			"     AND jr.tenant = $2 %s"
			"   ORDER BY jr.queue, jr.ordinal LIMIT 32) c"
			" GROUP BY c.run_id ORDER BY random()",
			with_room ? "AND " SP_RUN_HAS_ROOM : ""),
			2, types);
	}
	args[0] = queues;
	nulls[0] = queues_null ? 'n' : ' ';
	args[1] = CStringGetTextDatum(tenant);
	if (SPI_execute_plan(candidates_plans[with_room], args, nulls, false, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not read the queued external jobs");
	cands = SPI_tuptable;
	ncands = SPI_processed;
	for (k = 0; k < ncands; k++)
	{
		bool		dummy;

		if (lease_one(SPI_getbinval(cands->vals[k], cands->tupdesc, 1, &dummy),
					  queues, queues_null, tenant, worker, lease, rsinfo,
					  per_query))
			return true;
	}
	return false;
}

/*
 * lease_jobs leases up to max_jobs runnable external jobs of the queues
 * (all when queues is 0) of a tenant to a runner, in one statement, and
 * puts their rows into the result set; returns how many.
 *
 * Runs are served in the order of their first queued jobs in the queue
 * index (each run's first jobs come before anyone's later ones), read
 * without locks.  They are locked in that order with SKIP LOCKED, only as
 * many as the batch needs (the scans are lazy), so that concurrent
 * runners spread over runs and a claimer never waits; each gives its
 * queued jobs in manifest order, as many as its max_parallel leaves room
 * for on the run's latest row.  Jobs are updated through the row versions
 * read (ctid, which the statement's snapshot keeps in place): a job taken
 * meanwhile is passed over, its status being checked again on its latest
 * version.  They are handed out together (hand_out).  With "with_room",
 * only jobs of runs below their max_parallel are read (see claim_rounds).
 */
static int
lease_jobs(Datum queues, bool queues_null, const char *tenant,
		   const char *worker, Datum lease, int max_jobs, bool with_room,
		   ReturnSetInfo *rsinfo, MemoryContext per_query)
{
	Datum		args[7];
	char		nulls[7] = "       ";
	int			n;

	if (claim_plan == NULL)
	{
		Oid			types[7] = {TEXTARRAYOID, TEXTOID, INT4OID, INT4OID,
		TEXTOID, INTERVALOID, BOOLOID};

		claim_plan = sp_prepare_kept_opt(
			"WITH f AS ("
			"  SELECT c.run_id, min(c.pos) AS pos FROM ("
			"    SELECT c.run_id, row_number() OVER () AS pos FROM ("
			"      SELECT jr.run_id FROM stellapack_internal.job_run jr"
			"       WHERE " SP_IN_QUEUE_INDEX
			"         AND ($1::text[] IS NULL OR jr.queue = ANY ($1))"
			"         AND jr.tenant = $2"
			"         AND (NOT $7 OR " SP_RUN_HAS_ROOM ")"
			"       ORDER BY jr.queue, jr.ordinal LIMIT $3) c) c"
			"   GROUP BY c.run_id),"
			" r AS ("
			"  SELECT x.*, f.pos FROM (SELECT * FROM f ORDER BY pos) f,"
			"   LATERAL (SELECT y.id, y.max_parallel - y.running AS room,"
			"                   y.status, y.inputs"
			"              FROM stellapack_internal.run y"
			"             WHERE y.id = f.run_id"
			"               AND y.running < y.max_parallel"
			"               AND NOT y.cancel_requested AND NOT y.halted"
			"               FOR UPDATE SKIP LOCKED) x),"
			" pick AS ("
			"  SELECT q.tid, r.status, r.inputs FROM r,"
			"   LATERAL (SELECT jr.ctid AS tid"
			"              FROM stellapack_internal.job_run jr"
			"             WHERE jr.run_id = r.id AND jr.status = 'queued'"
			"               AND jr.kind = 'external' AND jr.not_before IS NULL"
			"               AND ($1::text[] IS NULL OR jr.queue = ANY ($1))"
			"             ORDER BY jr.ordinal LIMIT r.room) q"
			"  LIMIT $4),"
			" j AS ("
			"  UPDATE stellapack_internal.job_run jr"
			"     SET status = 'running', attempt = jr.attempt + 1,"
			"         started_at = clock_timestamp(), finished_at = NULL,"
			"         worker = $5, lease_id = gen_random_uuid(),"
			"         lease_expires_at = clock_timestamp() + $6,"
			"         lease_ms = (1000 * extract(epoch FROM $6))::bigint"
			"    FROM pick"
			"   WHERE jr.ctid = pick.tid"
			"     AND jr.status = 'queued' AND jr.not_before IS NULL"
			"  RETURNING jr.lease_id, jr.id, jr.run_id, jr.job, jr.spec,"
			"            pick.inputs, jr.attempt, jr.lease_expires_at,"
			"            pick.status, jr.ordinal),"
			" n AS (SELECT run_id, count(*)::int AS n FROM j GROUP BY run_id),"
			" u AS ("
			"  UPDATE stellapack_internal.run x"
			"     SET running = x.running + n.n, status = 'running',"
			"         started_at = coalesce(x.started_at, clock_timestamp())"
			"    FROM n WHERE x.id = n.run_id)"
			" SELECT lease_id, id, run_id, job, spec, inputs, attempt,"
			"        lease_expires_at, status"
			"   FROM j ORDER BY run_id, ordinal",
			7, types, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = queues;
	nulls[0] = queues_null ? 'n' : ' ';
	args[1] = CStringGetTextDatum(tenant);
	args[2] = Int32GetDatum(Max(32, max_jobs * 4));
	args[3] = Int32GetDatum(max_jobs);
	args[4] = CStringGetTextDatum(worker);
	args[5] = lease;
	args[6] = BoolGetDatum(with_room);
	if (sp_execute_indexed(claim_plan, args, nulls) != SPI_OK_SELECT)
		elog(ERROR, "could not lease jobs");
	n = (int) SPI_processed;
	if (n > 0)
		hand_out(SPI_tuptable, n, tenant, worker, rsinfo, per_query);
	return n;
}

/*
 * claim_args checks the claim arguments of a call (worker, lease and
 * max_jobs at the given argument numbers) and returns them.
 */
static void
claim_args(FunctionCallInfo fcinfo, int a_worker, int a_lease, int a_max,
		   char **worker, Datum *lease, int *max_jobs)
{
	Interval   *iv;

	if (PG_ARGISNULL(a_worker) ||
		strlen(*worker = text_to_cstring(PG_GETARG_TEXT_PP(a_worker))) < 1 ||
		pg_mbstrlen(*worker) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("worker name must be 1 to 200 characters")));
	iv = PG_ARGISNULL(a_lease) ? NULL : PG_GETARG_INTERVAL_P(a_lease);
	if (iv == NULL ||
		interval_compare(iv, "1 second") < 0 ||
		interval_compare(iv, "1 day") > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be from 1 second to 1 day")));
	*lease = IntervalPGetDatum(iv);
	*max_jobs = PG_ARGISNULL(a_max) ? 0 : PG_GETARG_INT32(a_max);
	if (*max_jobs < 1 || *max_jobs > SP_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_jobs must be from 1 to %d", SP_MAX_BATCH)));
}

/*
 * claim_rounds leases up to max_jobs runnable external jobs of the given
 * queues (all when queues_null) of a tenant into the result set, ordered
 * by run: one at a time through claim_one, a batch through lease_jobs.  A
 * round that gets fewer than wanted is followed by another, up to three.
 * The first round reads the queue index alone, which is cheapest; the next
 * ones read only jobs of runs that have room, so that jobs queued behind
 * many of runs at their max_parallel (or taken by other runners meanwhile)
 * do not hide a runnable one.  The caller is connected to SPI.
 */
static void
claim_rounds(Datum queues, bool queues_null, const char *tenant,
			 const char *worker, Datum lease, int max_jobs,
			 ReturnSetInfo *rsinfo, MemoryContext per_query)
{
	int			n = 0;
	int			round;

	for (round = 0; round < 3 && n < max_jobs; round++)
	{
		int			got;

		if (max_jobs == 1)
			got = claim_one(queues, queues_null, tenant, worker, lease,
							round > 0, rsinfo, per_query) ? 1 : 0;
		else
			got = lease_jobs(queues, queues_null, tenant, worker, lease,
							 max_jobs - n, round > 0, rsinfo, per_query);
		n += got;
		/* an empty round after a first one: nothing more to get */
		if (got == 0 && round > 0)
			break;
	}
}

/*
 * job_claim(worker, queues, lease, max_jobs) leases up to max_jobs
 * runnable external jobs of the given queues (all when NULL) of the
 * caller's tenant (claim_rounds).
 */
PG_FUNCTION_INFO_V1(sp_job_claim);
Datum
sp_job_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *worker;
	Datum		lease;
	int			max_jobs;

	claim_args(fcinfo, 0, 2, 3, &worker, &lease, &max_jobs);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	claim_rounds(PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1),
				 PG_ARGISNULL(1), sp_current_tenant(), worker, lease,
				 max_jobs, rsinfo, rsinfo->econtext->ecxt_per_query_memory);
	SPI_finish();
	return (Datum) 0;
}

/*
 * complete_leases records the success of n leased jobs (results may hold
 * NULLs, or be NULL) in one statement, for every lease that is still good:
 * its job running under it, unexpired, its run not canceled.  Each lease
 * is looked up once, on its own ("k", a lookup per lease whatever the
 * statistics say: a plan made while job_run looked empty read the whole
 * lease index for every batch).  The runs of the jobs found are locked
 * next, in id order, before any job is touched (the count in "gate" waits
 * for all of them), so that batches of concurrent runners cannot
 * deadlock; each job is then updated through the row version read, and
 * one changed meanwhile is passed over here and completed by the caller
 * through the SQL functions.  Each job's "succeeded" line, its event and,
 * when needed, the release of its dependents and the settling of its run
 * follow.  recorded[i] tells whether lease i was good and recorded; with
 * rows set, the job_runs row of lease i goes to rows[i] (in the caller's
 * context).
 */
static void
complete_leases(Datum *leases, Datum *results, bool *results_null, int n,
				const char *tenant, bool *recorded, HeapTuple *rows,
				TupleDesc rowdesc, MemoryContext caller)
{
	Datum		args[3];
	int			dims[1] = {n};
	int			lbs[1] = {1};
	SPITupleTable *done;
	int			ndone;
	int			i;
	pg_uuid_t  *runs;
	SpLogLine  *lines;
	pg_uuid_t  *ended_runs;
	pg_uuid_t  *late_runs;
	SpRunEnd   *ends;
	int			nended = 0;
	int			nlate = 0;

	if (complete_plan == NULL)
	{
		Oid			types[3] = {UUIDARRAYOID, JSONBARRAYOID, TEXTOID};

		complete_plan = sp_prepare_kept_opt(
			"WITH l AS ("
			"  SELECT * FROM unnest($1, $2) WITH ORDINALITY"
			"    AS l(lease, result, o)),"
			" k AS MATERIALIZED ("
			"  SELECT l.lease, l.result, l.o, x.tid, x.run_id FROM l,"
			"   LATERAL (SELECT jr.ctid AS tid, jr.run_id"
			"              FROM stellapack_internal.job_run jr"
			"             WHERE jr.lease_id = l.lease AND jr.tenant = $3) x),"
			" lk AS ("
			"  SELECT x.id, x.cancel_requested FROM stellapack_internal.run x"
			"   WHERE x.id = ANY (ARRAY (SELECT run_id FROM k))"
			"   ORDER BY x.id FOR UPDATE),"
			" gate AS (SELECT count(*) AS n FROM lk),"
			" done AS ("
			"  UPDATE stellapack_internal.job_run jr"
			"     SET status = 'succeeded', finished_at = clock_timestamp(),"
			"         result = k.result, error = NULL, sqlstate = NULL"
			"    FROM k"
			"   WHERE (SELECT n FROM gate) > 0 AND jr.ctid = k.tid"
			"     AND jr.lease_id = k.lease AND jr.tenant = $3"
			"     AND NOT EXISTS (SELECT FROM lk WHERE lk.id = jr.run_id"
			"                        AND lk.cancel_requested)"
			"     AND jr.status = 'running'"
			"     AND jr.lease_expires_at > clock_timestamp()"
			"  RETURNING jr.id, jr.run_id, jr.job, jr.kind, jr.status,"
			"            jr.attempt, jr.started_at, jr.finished_at, jr.error,"
			"            jr.sqlstate, jr.worker, jr.ordinal, jr.needs,"
			"            jr.queue, jr.not_before, jr.result, k.o),"
			" cnt AS (SELECT run_id, count(*)::int AS n FROM done"
			"          GROUP BY run_id),"
			" counted AS ("
			"  UPDATE stellapack_internal.run x"
			"     SET unfinished = x.unfinished - cnt.n,"
			"         running = x.running - cnt.n"
			"    FROM cnt WHERE x.id = cnt.run_id"
			"  RETURNING x.id, x.unfinished = 0 AS finished,"
			"            coalesce(x.deadline <= clock_timestamp(), false)"
			"            AS late)"
			" SELECT d.*, c.finished, c.late,"
			"        EXISTS (SELECT FROM stellapack_internal.job_run b"
			"                 WHERE b.run_id = d.run_id AND b.status = 'blocked'"
			"                   AND d.job = ANY (b.needs)) AS dependents"
			"   FROM done d JOIN counted c ON c.id = d.run_id"
			"  ORDER BY d.run_id, d.ordinal",
			3, types, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = PointerGetDatum(construct_md_array(leases, NULL, 1, dims, lbs,
												 UUIDOID, UUID_LEN, false,
												 TYPALIGN_CHAR));
	args[1] = results == NULL ? (Datum) 0 :
		PointerGetDatum(construct_md_array(results, results_null, 1, dims,
										   lbs, JSONBOID, -1, false,
										   TYPALIGN_INT));
	args[2] = CStringGetTextDatum(tenant);
	if (sp_execute_indexed(complete_plan, args,
						results == NULL ? " n " : "   ") != SPI_OK_SELECT)
		elog(ERROR, "could not record the end of leased jobs");
	done = SPI_tuptable;
	ndone = (int) SPI_processed;
	if (ndone == 0)
		return;

	/*
	 * The rows to return, then the lines (in run and job order), with room
	 * for the "finished" lines of the runs that end
	 */
	runs = palloc(sizeof(pg_uuid_t) * ndone * 2);
	lines = palloc(sizeof(SpLogLine) * ndone * 2);
	for (i = 0; i < ndone; i++)
	{
		HeapTuple	tup = done->vals[i];
		TupleDesc	desc = done->tupdesc;
		Datum		values[SP_ROW_COLUMNS];
		bool		isnull[SP_ROW_COLUMNS];
		bool		dummy;
		int			o = DatumGetInt64(SPI_getbinval(tup, desc,
													SP_ROW_COLUMNS + 1,
													&dummy));

		recorded[o - 1] = true;
		if (rows)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			sp_copy_row(tup, desc, 1, SP_ROW_COLUMNS, values, isnull);
			rows[o - 1] = heap_form_tuple(rowdesc, values, isnull);
			MemoryContextSwitchTo(old);
		}

		memcpy(&runs[i], DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &dummy)),
			   sizeof(pg_uuid_t));
		sp_succeeded_line(SPI_getvalue(tup, desc, 3),
						  DatumGetInt32(SPI_getbinval(tup, desc, 6, &dummy)),
						  DatumGetTimestampTz(SPI_getbinval(tup, desc, 8,
															&dummy)) -
						  DatumGetTimestampTz(SPI_getbinval(tup, desc, 7,
															&dummy)),
						  &lines[i]);
	}

	/*
	 * Runs left with nothing unfinished end now, in one statement, so that
	 * their "finished" lines go with the jobs' (after them, as they come
	 * later in the arrays); nothing waits on their jobs.  Runs past their
	 * deadline are settled last.
	 */
	ended_runs = palloc(sizeof(pg_uuid_t) * ndone);
	late_runs = palloc(sizeof(pg_uuid_t) * ndone);
	for (i = 0; i < ndone; i++)
	{
		HeapTuple	tup = done->vals[i];
		bool		dummy;

		if (i + 1 < ndone && memcmp(&runs[i], &runs[i + 1], UUID_LEN) == 0)
			continue;			/* not the run's last job of the batch */
		if (DatumGetBool(SPI_getbinval(tup, done->tupdesc,
									   SP_ROW_COLUMNS + 3, &dummy)))
			late_runs[nlate++] = runs[i];
		else if (DatumGetBool(SPI_getbinval(tup, done->tupdesc,
											SP_ROW_COLUMNS + 2, &dummy)))
			ended_runs[nended++] = runs[i];
	}
	ends = palloc(sizeof(SpRunEnd) * Max(nended, 1));
	if (nended > 0)
		nended = sp_runs_finish(ended_runs, nended, ends);
	for (i = 0; i < nended; i++)
	{
		runs[ndone + i] = ends[i].run;
		lines[ndone + i] = ends[i].line;
	}
	sp_log_store_runs(runs, lines, ndone + nended);

	/* events, dependents of each job, then runs past their deadline */
	for (i = 0; i < ndone; i++)
	{
		bool		dummy;

		sp_event(&runs[i], lines[i].job, "succeeded", tenant);
		if (DatumGetBool(SPI_getbinval(done->vals[i], done->tupdesc,
									   SP_ROW_COLUMNS + 4, &dummy)))
			sp_engine_call("release_dependents", &runs[i], lines[i].job);
	}
	sp_runs_announce(ends, nended);
	for (i = 0; i < nlate; i++)
		sp_run_ended(&late_runs[i], true);
}

/*
 * job_row returns the row of job "job" of run "run" as the job_runs view
 * shows it, formed in the caller's context.
 */
static HeapTuple
job_row(Datum run, Datum job, TupleDesc rowdesc, MemoryContext caller)
{
	Datum		args[2];
	Datum	   *values;
	bool	   *isnull;
	MemoryContext old;
	HeapTuple	row;

	if (row_plan == NULL)
		row_plan = sp_prepare_kept(
			"SELECT * FROM stellapack.job_runs WHERE run_id = $1 AND job = $2",
			2, (Oid[]) {UUIDOID, TEXTOID});
	args[0] = run;
	args[1] = job;
	if (SPI_execute_plan(row_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read a leased job");
	values = palloc(sizeof(Datum) * rowdesc->natts);
	isnull = palloc(sizeof(bool) * rowdesc->natts);
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values,
					  isnull);
	old = MemoryContextSwitchTo(caller);
	row = heap_form_tuple(rowdesc, values, isnull);
	MemoryContextSwitchTo(old);
	return row;
}

/*
 * complete_one records the outcome of one lease the way the SQL functions
 * do: stellapack_internal.lease_job() raises the error that fits a lease
 * that is not good (or locks the job), then job_end() records it.  For
 * failures, and for a lease that succeed_one or complete_leases did not
 * take.  The job's run and name go to *run and *job.
 */
static void
complete_one(Datum lease, bool succeeded, Datum result, bool result_null,
			 Datum error, bool error_null, Datum *run, Datum *job)
{
	Datum		args[6];
	char		nulls[6] = "      ";
	HeapTuple	tup;
	TupleDesc	desc;
	bool		dummy;

	args[0] = lease;
	if (SPI_execute_with_args("SELECT run_id, job FROM"
							  " stellapack_internal.lease_job($1, true)",
							  1, (Oid[]) {UUIDOID}, args, NULL, false,
							  1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not check lease");
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*run = SPI_getbinval(tup, desc, 1, &dummy);
	*job = SPI_getbinval(tup, desc, 2, &dummy);

	args[0] = *run;
	args[1] = *job;
	args[2] = CStringGetTextDatum(succeeded ? "succeeded" : "failed");
	if (succeeded)
		nulls[3] = 'n';
	else if (error_null)
		args[3] = CStringGetTextDatum("the runner reported a failure");
	else
		args[3] = error;
	nulls[4] = 'n';
	args[5] = result;
	nulls[5] = result_null ? 'n' : ' ';
	if (SPI_execute_with_args("SELECT stellapack_internal.job_end($1, $2,"
							  " $3, $4, $5, $6)",
							  6, (Oid[]) {UUIDOID, TEXTOID, TEXTOID,
								  TEXTOID, TEXTOID, JSONBOID},
							  args, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not record the end of a leased job");
}

/*
 * succeed_one records the success of one leased job through the
 * executors' success path, when its lease is good; returns whether it did,
 * with the job's run and name in *run and *job.  With ln set, the run's
 * next queued job of ln's queues is leased to the runner in the same
 * statement when there is one (*took is set and ln->row holds its lease
 * row).  When the lease is not good, complete_one raises the error that
 * fits.
 */
static bool
succeed_one(Datum lease, Datum result, bool result_null, const char *tenant,
			const char *worker, SpLeaseNext *ln, Datum *run, Datum *job,
			bool *took)
{
	Datum		args[2];
	SpClaim		c;
	SpClaim		next;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		dummy;
	SpEnd		end;

	if (lookup_plan == NULL)
		lookup_plan = sp_prepare_kept(
			"SELECT run_id, job FROM stellapack_internal.job_run"
			" WHERE lease_id = $1 AND tenant = $2",
			2, (Oid[]) {UUIDOID, TEXTOID});
	args[0] = lease;
	args[1] = CStringGetTextDatum(tenant);
	if (SPI_execute_plan(lookup_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look a lease up");
	if (SPI_processed != 1)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*run = SPI_getbinval(tup, desc, 1, &dummy);
	*job = SPI_getbinval(tup, desc, 2, &dummy);

	memset(&c, 0, sizeof(c));
	memset(&next, 0, sizeof(next));
	memcpy(&c.run_id, DatumGetUUIDP(*run), sizeof(pg_uuid_t));
	text_to_cstring_buffer(DatumGetTextPP(*job), c.job, SP_JOB_NAME_LEN);
	c.tenant = pstrdup(tenant);
	end = sp_job_succeeded(&c, DatumGetUUIDP(lease),
						   result_null ? NULL :
						   DatumGetCString(DirectFunctionCall1(jsonb_out,
															   result)),
						   NIL, ln != NULL && in_slice(&c.run_id), worker,
						   &next, ln);
	*took = end == SP_END_TOOK_NEXT;
	sp_claim_clear(&next);
	return end != SP_END_NOT_RUNNING;
}

/*
 * end_lease records the outcome of a leased job: a success with a lease
 * that is still good goes through the executors' success path
 * (succeed_one, which with ln set may lease the run's next job: then true
 * is returned); everything else goes through the SQL functions
 * (complete_one), which raise the errors a runner acts on.  a[0 .. 3] are
 * job_complete()'s arguments (lease_id, succeeded, result, error).  The
 * job's run and name go to *run and *job.
 */
static bool
end_lease(NullableDatum *a, const char *tenant, const char *worker,
		  SpLeaseNext *ln, Datum *run, Datum *job)
{
	bool		took = false;

	if (a[1].isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("succeeded must not be null")));
	if (a[0].isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lease_id must not be null")));
	if (DatumGetBool(a[1].value) &&
		succeed_one(a[0].value, a[2].value, a[2].isnull, tenant, worker, ln,
					run, job, &took))
		return took;
	complete_one(a[0].value, DatumGetBool(a[1].value), a[2].value,
				 a[2].isnull, a[3].value, a[3].isnull, run, job);
	return false;
}

/*
 * job_complete(lease_id, succeeded, result, error) records the outcome of
 * a leased job (end_lease) and returns its job_runs row.
 */
PG_FUNCTION_INFO_V1(sp_job_complete);
Datum
sp_job_complete(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	TupleDesc	rowdesc;
	HeapTuple	row;
	Datum		run;
	Datum		job;

	if (get_call_result_type(fcinfo, NULL, &rowdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "job_complete must return a row");
	rowdesc = BlessTupleDesc(rowdesc);

	SPI_connect();
	(void) end_lease(fcinfo->args, sp_current_tenant(), "", NULL, &run, &job);
	row = job_row(run, job, rowdesc, caller);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(row));
}

/*
 * job_complete_and_claim(lease_id, succeeded, worker, queues, lease,
 * max_jobs, result, error) records the outcome of a leased job like
 * job_complete() and, in the same transaction, leases up to max_jobs jobs
 * like job_claim(), whose rows it returns: a runner that finishes a job
 * and wants the next one makes one call and one commit instead of two.
 * After a success, the first job comes from the same run when it has one
 * queued in the runner's queues, taken by the statement that records the
 * success into the slot it frees (as an executor goes on with its run);
 * the others are claimed as by job_claim().  When the outcome is refused,
 * nothing is leased.
 */
PG_FUNCTION_INFO_V1(sp_job_complete_and_claim);
Datum
sp_job_complete_and_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *worker;
	Datum		lease;
	int			max_jobs;
	Datum		run;
	Datum		job;
	SpLeaseNext ln;
	char	   *tenant;

	/* job_complete()'s arguments: lease_id, succeeded, result, error */
	NullableDatum ends[4] = {fcinfo->args[0], fcinfo->args[1],
	fcinfo->args[6], fcinfo->args[7]};

	claim_args(fcinfo, 2, 4, 5, &worker, &lease, &max_jobs);
	InitMaterializedSRF(fcinfo, 0);
	memset(&ln, 0, sizeof(ln));
	ln.queues_null = PG_ARGISNULL(3);
	ln.queues = ln.queues_null ? (Datum) 0 : PG_GETARG_DATUM(3);
	ln.lease = lease;
	tenant = sp_current_tenant();
	SPI_connect();
	if (end_lease(ends, tenant, worker, &ln, &run, &job))
	{
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, ln.row,
							 ln.nulls);
		max_jobs--;
	}
	if (max_jobs > 0)
		claim_rounds(ln.queues, ln.queues_null, tenant, worker, lease,
					 max_jobs, rsinfo,
					 rsinfo->econtext->ecxt_per_query_memory);
	SPI_finish();
	return (Datum) 0;
}

/*
 * complete_batch records the success of a batch of leased jobs: the
 * leases (a uuid[]) and their results (a jsonb[] with one element per
 * lease, or null) are checked, the good leases are recorded together
 * (complete_leases), and any other goes through complete_one, which raises
 * its error, so that a batch is recorded whole or not at all.  With store
 * set, the jobs' job_runs rows (of type rowdesc) go into it in the order
 * of the leases.  The caller is connected to SPI.
 */
static void
complete_batch(NullableDatum lease_ids, NullableDatum results_arr,
			   const char *tenant, Tuplestorestate *store, TupleDesc rowdesc,
			   MemoryContext per_query)
{
	Datum	   *leases;
	bool	   *leases_null;
	int			n;
	Datum	   *results = NULL;
	bool	   *results_null = NULL;
	int			nresults;
	bool	   *recorded;
	HeapTuple  *rows = NULL;
	int			i;

	if (lease_ids.isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lease_ids must not be null")));
	deconstruct_array(DatumGetArrayTypeP(lease_ids.value), UUIDOID, UUID_LEN,
					  false, TYPALIGN_CHAR, &leases, &leases_null, &n);
	if (n > SP_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a batch holds at most %d leases", SP_MAX_BATCH)));
	for (i = 0; i < n; i++)
		if (leases_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("lease_ids must not contain nulls")));
	if (!results_arr.isnull)
	{
		deconstruct_array(DatumGetArrayTypeP(results_arr.value), JSONBOID, -1,
						  false, TYPALIGN_INT, &results, &results_null,
						  &nresults);
		if (nresults != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("results must have one element per lease"),
					 errdetail("There are %d leases and %d results.", n,
							   nresults)));
	}
	if (n == 0)
		return;

	recorded = palloc0(sizeof(bool) * n);
	if (store)
		rows = MemoryContextAllocZero(per_query, sizeof(HeapTuple) * n);
	complete_leases(leases, results, results_null, n, tenant, recorded, rows,
					rowdesc, per_query);
	for (i = 0; i < n; i++)
	{
		if (!recorded[i])
		{
			Datum		run;
			Datum		job;

			complete_one(leases[i], true, results ? results[i] : (Datum) 0,
						 results ? results_null[i] : true, (Datum) 0, true,
						 &run, &job);
			if (store)
				rows[i] = job_row(run, job, rowdesc, per_query);
		}
		if (store)
			tuplestore_puttuple(store, rows[i]);
	}
}

/*
 * job_complete_many(lease_ids, results) records the success of a batch of
 * leased jobs (complete_batch) and returns their job_runs rows in the
 * order of the leases.
 */
PG_FUNCTION_INFO_V1(sp_job_complete_many);
Datum
sp_job_complete_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	complete_batch(fcinfo->args[0], fcinfo->args[1], sp_current_tenant(),
				   rsinfo->setResult, rsinfo->setDesc,
				   rsinfo->econtext->ecxt_per_query_memory);
	SPI_finish();
	return (Datum) 0;
}

/*
 * job_complete_many_and_claim(lease_ids, worker, queues, lease, max_jobs,
 * results) records the success of a batch of leased jobs like
 * job_complete_many() and, in the same transaction, leases up to max_jobs
 * jobs like job_claim(), whose rows it returns: a runner that works in
 * batches makes one call and one commit per batch instead of two.  When
 * the batch is refused, nothing is leased.
 */
PG_FUNCTION_INFO_V1(sp_job_complete_many_and_claim);
Datum
sp_job_complete_many_and_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext per_query;
	char	   *worker;
	Datum		lease;
	int			max_jobs;
	char	   *tenant;

	claim_args(fcinfo, 1, 3, 4, &worker, &lease, &max_jobs);
	InitMaterializedSRF(fcinfo, 0);
	per_query = rsinfo->econtext->ecxt_per_query_memory;
	tenant = sp_current_tenant();
	SPI_connect();
	complete_batch(fcinfo->args[0], fcinfo->args[5], tenant, NULL, NULL,
				   per_query);
	claim_rounds(PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
				 PG_ARGISNULL(2), tenant, worker, lease, max_jobs, rsinfo,
				 per_query);
	SPI_finish();
	return (Datum) 0;
}
