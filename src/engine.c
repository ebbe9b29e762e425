/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The run state machine's hot path, in C: an executor claiming the
 *	  next SQL job, and recording that a job succeeded.  Each is a couple
 *	  of prepared statements; every rarer transition (failures, retries,
 *	  dependents, the end of a run, timeouts, cancels) stays in the
 *	  PL/pgSQL functions of stellapack_internal, which these call when a
 *	  job's end needs more than counting.
 *
 * Also here: the state-change events of the global channel, which every
 * path of the engine sends (stellapack_internal.event() is this code).
 *
 * Locking follows the rule of the SQL functions: a run's row first, then
 * its job rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "stellapack.h"

static SPIPlanPtr claim_run_plan = NULL;
static SPIPlanPtr claim_job_plan = NULL;
static SPIPlanPtr job_end_plans[2];	/* an executor's, a runner's */
static SPIPlanPtr channel_plan = NULL;

/*
 * sp_prepare_kept makes a statement into a plan kept for the life of the
 * process.  Called inside an SPI connection.
 */
SPIPlanPtr
sp_prepare_kept(const char *sql, int nargs, Oid *types)
{
	return sp_prepare_kept_opt(sql, nargs, types, 0);
}

/*
 * sp_prepare_kept_opt is sp_prepare_kept with cursor options: the runner
 * calls, whose statements are long to plan and have one good plan, pass
 * CURSOR_OPT_GENERIC_PLAN so that they are planned once, not per call.
 */
SPIPlanPtr
sp_prepare_kept_opt(const char *sql, int nargs, Oid *types, int options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, options);

	if (plan == NULL)
		elog(ERROR, "could not prepare a statement of stellapack: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * sp_copy_row copies columns first .. first + n - 1 of tup into values and
 * nulls, in the current memory context.
 */
void
sp_copy_row(HeapTuple tup, TupleDesc desc, int first, int n, Datum *values,
			bool *nulls)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, first + i - 1);

		values[i] = SPI_getbinval(tup, desc, first + i, &nulls[i]);
		if (!nulls[i])
			values[i] = datumCopy(values[i], att->attbyval, att->attlen);
	}
}

/*
 * Planner methods the statements of runners' calls and of the log go
 * without.  Each is planned once (CURSOR_OPT_GENERIC_PLAN), and again
 * only when a table's statistics change, possibly while the tables are
 * nearly empty: without these, such a plan can scan whole tables once
 * they are large.  Every lookup of these statements has an index.  JIT
 * goes too: a generic plan's cost grows with the tables (a batched claim's
 * LIMIT $n is costed as a tenth of the queue), and past jit_above_cost
 * every call compiled the plan's expressions again, about 60 ms each for
 * a few milliseconds of work.
 */
static const char *const bridge_plan_off[] = {
	"enable_seqscan", "enable_bitmapscan", "enable_hashjoin",
	"enable_mergejoin", "jit"
};

/*
 * sp_execute_indexed runs a kept plan, planned (when it must be) without
 * the methods above.
 */
int
sp_execute_indexed(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	int			nest = NewGUCNestLevel();
	int			ret;
	int			i;

	for (i = 0; i < lengthof(bridge_plan_off); i++)
		(void) set_config_option(bridge_plan_off[i], "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
								 false);
	ret = SPI_execute_plan(plan, args, nulls, false, 0);
	AtEOXact_GUC(true, nest);
	return ret;
}

/*
 * sp_events_channel names a tenant's channel of state changes, like
 * stellapack_internal.events_channel(), without a query for the default
 * tenant.  The result is palloc'd in the caller's context.
 */
static char *
sp_events_channel(const char *tenant)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		arg;
	char	   *channel;

	if (strcmp(tenant, "default") == 0)
		return pstrdup("stellapack_events");

	SPI_connect();
	if (channel_plan == NULL)
	{
		Oid			types[1] = {TEXTOID};

		channel_plan =
			sp_prepare_kept("SELECT stellapack_internal.events_channel($1)",
							   1, types);
	}
	arg = CStringGetTextDatum(tenant);
	if (SPI_execute_plan(channel_plan, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not name the events channel of tenant \"%s\"",
			 tenant);
	channel = MemoryContextStrdup(caller,
								  SPI_getvalue(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return channel;
}

/*
 * sp_event announces, at commit, a run's or a job's new state on its
 * tenant's events channel: {"run", "job" (null for the run), "status",
 * "tenant"}.
 */
void
sp_event(pg_uuid_t *run_id, const char *job, const char *status,
		 const char *tenant)
{
	StringInfoData p;
	char	   *channel = sp_events_channel(tenant);

	initStringInfo(&p);
	appendStringInfo(&p, "{\"run\" : \"%s\", \"job\" : ",
					 DatumGetCString(DirectFunctionCall1(uuid_out,
												UUIDPGetDatum(run_id))));
	if (job)
		escape_json(&p, job);
	else
		appendStringInfoString(&p, "null");
	appendStringInfoString(&p, ", \"status\" : ");
	escape_json(&p, status);
	appendStringInfoString(&p, ", \"tenant\" : ");
	escape_json(&p, tenant);
	appendStringInfoChar(&p, '}');
	sp_announce(channel, p.data);
	pfree(p.data);
	pfree(channel);
}

/*
 * event(run_id, job, status, tenant) is sp_event for the SQL functions.
 */
PG_FUNCTION_INFO_V1(sp_event_sql);
Datum
sp_event_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run id, status and tenant of an event must not be null")));
	sp_event(PG_GETARG_UUID_P(0),
			 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
			 text_to_cstring(PG_GETARG_TEXT_PP(2)),
			 text_to_cstring(PG_GETARG_TEXT_PP(3)));
	PG_RETURN_VOID();
}

/*
 * sp_engine_call runs "SELECT stellapack_internal.<function>($1, ...)" for
 * the rare transitions; the run id comes first, then the job when given.
 */
void
sp_engine_call(const char *function, pg_uuid_t *run_id, const char *job)
{
	Datum		args[2];
	Oid			types[2] = {UUIDOID, TEXTOID};
	char	   *sql;

	args[0] = UUIDPGetDatum(run_id);
	args[1] = job ? CStringGetTextDatum(job) : (Datum) 0;
	sql = psprintf("SELECT stellapack_internal.%s($1%s)", function,
				   job ? ", $2" : "");
	SPI_connect();
	if (SPI_execute_with_args(sql, job ? 2 : 1, types, args, NULL, false,
							  0) != SPI_OK_SELECT)
		elog(ERROR, "could not run stellapack_internal.%s()", function);
	SPI_finish();
	pfree(sql);
}

/*
 * sp_runs_finish ends, in one statement, those of runs[0 .. n - 1] that
 * have not ended yet; their jobs have all ended.  A run's status follows
 * from them: canceled when a cancel was asked, failed when fail_fast
 * tripped or no job succeeded, completed when every job did, else
 * partially_failed.  ends[] gets each ended run with its "run finished"
 * line (in the caller's context); the caller stores the lines and then
 * calls sp_runs_announce().  Returns how many runs ended.  The caller holds
 * the runs' rows.
 *
 * "Not ended yet" is "finished_at IS NULL" (every end sets it), not a
 * status test: the index of active runs would match that one, and a plan
 * made without statistics would scan the index for each run.
 */
int
sp_runs_finish(pg_uuid_t *runs, int n, SpRunEnd *ends)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext caller = CurrentMemoryContext;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum		arg;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			nended;
	int			i;

	for (i = 0; i < n; i++)
		ids[i] = UUIDPGetDatum(&runs[i]);
	arg = PointerGetDatum(construct_md_array(ids, NULL, 1, dims, lbs, UUIDOID,
											 UUID_LEN, false, TYPALIGN_CHAR));
	SPI_connect();
	if (plan == NULL)
	{
		Oid			types[1] = {UUIDARRAYOID};

		plan = sp_prepare_kept_opt(
			"WITH c AS MATERIALIZED ("
			"  SELECT run_id, count(*) FILTER (WHERE status = 'succeeded')"
			"         AS ok, count(*) AS n"
			"    FROM stellapack_internal.job_run WHERE run_id = ANY ($1)"
			"   GROUP BY run_id)"
			" UPDATE stellapack_internal.run r"
			"    SET status = CASE WHEN r.cancel_requested THEN 'canceled'"
			"                      WHEN r.fail_fast_hit THEN 'failed'"
			"                      WHEN c.ok = c.n THEN 'completed'"
			"                      WHEN c.ok = 0 THEN 'failed'"
			"                      ELSE 'partially_failed' END,"
			"        finished_at = clock_timestamp(),"
			"        started_at = coalesce(r.started_at, clock_timestamp()),"
			"        ready_sql = 0, running = 0, unfinished = 0"
			"   FROM c"
			"  WHERE r.id = ANY ($1) AND r.id = c.run_id"
			"    AND r.finished_at IS NULL"
			" RETURNING r.id, r.status, r.tenant, c.ok, c.n",
			1, types, CURSOR_OPT_GENERIC_PLAN);
	}
	if (sp_execute_indexed(plan, &arg, NULL) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not finish runs");
	nended = (int) SPI_processed;
	for (i = 0; i < nended; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(caller);
		SpRunEnd   *e = &ends[i];
		bool		isnull;

		memcpy(&e->run, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)),
			   sizeof(pg_uuid_t));
		e->status = SPI_getvalue(tup, desc, 2);
		e->tenant = SPI_getvalue(tup, desc, 3);
		e->line.job = NULL;
		e->line.level = strcmp(e->status, "completed") == 0 ? "info" : "error";
		e->line.stream = "system";
		e->line.message = psprintf("run finished: %s (" INT64_FORMAT " of "
								   INT64_FORMAT " jobs succeeded)", e->status,
								   DatumGetInt64(SPI_getbinval(tup, desc, 4,
															   &isnull)),
								   DatumGetInt64(SPI_getbinval(tup, desc, 5,
															   &isnull)));
		e->line.data = psprintf("{\"event\": \"run_finished\", \"status\": \"%s\"}",
								e->status);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	pfree(ids);
	return nended;
}

/*
 * sp_runs_announce queues the events of runs that sp_runs_finish ended,
 * and wakes the callers of pack_run_wait() at commit.
 */
void
sp_runs_announce(SpRunEnd *ends, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		sp_event(&ends[i].run, NULL, ends[i].status, ends[i].tenant);
	if (n > 0)
		sp_wake_waiters_at_commit();
}

/*
 * sp_run_finish ends one run whose jobs have all ended (sp_runs_finish),
 * with its line and its event.  A run that has ended already is left
 * alone.
 */
void
sp_run_finish(pg_uuid_t *run_id)
{
	SpRunEnd	end;

	if (sp_runs_finish(run_id, 1, &end) == 1)
	{
		sp_log_store(run_id, &end.line, 1);
		sp_runs_announce(&end, 1);
	}
}

/*
 * run_finish(run_id) is sp_run_finish for the SQL functions.
 */
PG_FUNCTION_INFO_V1(sp_run_finish_sql);
Datum
sp_run_finish_sql(PG_FUNCTION_ARGS)
{
	sp_run_finish(PG_GETARG_UUID_P(0));
	PG_RETURN_VOID();
}

/*
 * sp_run_ended settles a run after the success of one of its jobs left it
 * with nothing unfinished or found it past its deadline ("late"): a late
 * run goes through run_settle() (SQL), which times it out; one that is not
 * is finished here.
 */
void
sp_run_ended(pg_uuid_t *run_id, bool late)
{
	if (late)
		sp_engine_call("run_settle", run_id, NULL);
	else
		sp_run_finish(run_id);
}

/*
 * sp_started_line fills *line with the "started" line of the job in c,
 * which runs on "where" (an executor, or "runner NAME").
 */
void
sp_started_line(SpClaim *c, const char *where, SpLogLine *line)
{
	line->job = c->job;
	line->level = "info";
	line->stream = "system";
	line->message = psprintf("job \"%s\" started (attempt %d) on %s",
							 c->job, c->attempt, where);
	line->data = psprintf("{\"event\": \"job_started\", \"attempt\": %d}",
						  c->attempt);
}

/*
 * sp_succeeded_line fills *line with the "succeeded" line of a job that
 * took "elapsed" microseconds in its attempt "attempt".
 */
void
sp_succeeded_line(const char *job, int attempt, int64 elapsed,
				  SpLogLine *line)
{
	line->job = job;
	line->level = "info";
	line->stream = "system";
	line->message = psprintf("job \"%s\" succeeded in %.1f ms", job,
							 (double) elapsed / 1000.0);
	line->data = psprintf("{\"event\": \"job_succeeded\", \"attempt\": %d}",
						  attempt);
}

/*
 * claim_fill reads a claimed job from four columns of tup starting at
 * "col" (job, command, timeout_ms, attempt) into c; the pack's deadline,
 * left_ms from now (0: none), bounds the job's own timeout.  The command
 * (none for an external job) is copied into TopMemoryContext.
 */
static void
claim_fill(SpClaim *c, HeapTuple tup, TupleDesc desc, int col, int64 left_ms)
{
	bool		isnull;
	Datum		d;

	strlcpy(c->job, SPI_getvalue(tup, desc, col), SP_JOB_NAME_LEN);
	(void) SPI_getbinval(tup, desc, col + 1, &isnull);
	c->command = isnull ? NULL :
		MemoryContextStrdup(TopMemoryContext,
							SPI_getvalue(tup, desc, col + 1));
	d = SPI_getbinval(tup, desc, col + 2, &isnull);
	c->timeout_ms = isnull ? 0 : DatumGetInt64(d);
	c->attempt = DatumGetInt32(SPI_getbinval(tup, desc, col + 3, &isnull));
	if (left_ms > 0 && (c->timeout_ms == 0 || left_ms < c->timeout_ms))
		c->timeout_ms = left_ms;
}

/*
 * sp_claim_sql claims the next runnable SQL job for an executor into *c:
 * the run served least recently goes first, so that no run starves the
 * others, and within it the first queued job in manifest order.  Runs
 * that another claimer holds are skipped.  Writes the "started" line and
 * the events; returns false when nothing is runnable.  Runs inside the
 * caller's transaction.
 */
bool
sp_claim_sql(const char *worker, SpClaim *c)
{
	int			tries;

	if (claim_run_plan == NULL)
	{
		Oid			types[2] = {UUIDOID, TEXTOID};

		SPI_connect();

		/*
		 * Two statements: the job is chosen under the run's lock, with a
		 * snapshot taken after it, so that it sees every claim committed
		 * before.
		 */
		claim_run_plan = sp_prepare_kept(
			"UPDATE stellapack_internal.run x"
			"   SET ready_sql = x.ready_sql - 1, running = x.running + 1,"
			"       dispatched_at = clock_timestamp(), status = 'running',"
			"       started_at = coalesce(x.started_at, clock_timestamp())"
			"  FROM (SELECT id, status FROM stellapack_internal.run"
			"         WHERE ready_sql > 0 AND running < max_parallel"
			"           AND NOT cancel_requested AND NOT halted"
			"           AND (deadline IS NULL OR deadline > clock_timestamp())"
			"         ORDER BY dispatched_at LIMIT 1"
			"           FOR UPDATE SKIP LOCKED) r"
			" WHERE x.id = r.id"
			" RETURNING x.id, r.status, x.started_by, x.tenant,"
			"           CASE WHEN x.deadline IS NOT NULL THEN"
			"                greatest(1, (1000 * extract(epoch FROM"
			"                     x.deadline - clock_timestamp()))::bigint)"
			"           END",
			0, NULL);
		claim_job_plan = sp_prepare_kept(
			"UPDATE stellapack_internal.job_run jr"
			"   SET status = 'running', attempt = jr.attempt + 1,"
			"       started_at = clock_timestamp(), finished_at = NULL,"
			"       worker = $2"
			" WHERE jr.run_id = $1 AND jr.status = 'queued'"
			"   AND jr.job = " SP_RUN_FIRST_QUEUED("q.kind = 'sql'")
			" RETURNING jr.job, jr.command, jr.timeout_ms, jr.attempt",
			2, types);
		SPI_finish();
	}

	/* a wrong counter is put right, and the claim tried again */
	for (tries = 0; tries < 3; tries++)
	{
		Datum		args[2];
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		pg_uuid_t	run_id;
		Datum		d;
		int64		left_ms;
		bool		was_pending;
		SpLogLine	line;

		SPI_connect();
		if (SPI_execute_plan(claim_run_plan, NULL, NULL, false, 1) !=
			SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not claim a job");
		if (SPI_processed == 0)
		{
			SPI_finish();
			return false;
		}
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		sp_claim_clear(c);
		memcpy(&run_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)),
			   sizeof(pg_uuid_t));
		c->run_id = run_id;
		was_pending = strcmp(SPI_getvalue(tup, desc, 2), "pending") == 0;
		strlcpy(c->role, SPI_getvalue(tup, desc, 3), NAMEDATALEN);
		c->tenant = MemoryContextStrdup(TopMemoryContext,
										SPI_getvalue(tup, desc, 4));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		left_ms = isnull ? 0 : DatumGetInt64(d);

		args[0] = UUIDPGetDatum(&run_id);
		args[1] = CStringGetTextDatum(worker);
		if (SPI_execute_plan(claim_job_plan, args, NULL, false, 1) !=
			SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not claim a job");
		if (SPI_processed == 0)
		{
			SPI_finish();
			sp_engine_call("run_recount", &run_id, NULL);
			continue;
		}
		claim_fill(c, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
				   left_ms);
		SPI_finish();

		sp_started_line(c, worker, &line);
		sp_log_store(&c->run_id, &line, 1);
		if (was_pending)
			sp_event(&c->run_id, NULL, "running", c->tenant);
		sp_event(&c->run_id, c->job, "running", c->tenant);
		return true;
	}
	return false;
}

/*
 * The success statement of sp_job_succeeded, in two kinds: an executor's,
 * which may go on with its run's next queued SQL job, and a runner's,
 * which may lease its run's next queued external job of the runner's
 * queues ($7, all when NULL) for $8.  %s: a condition on the run for
 * staying, what the next job's row gets besides, which next job, and how
 * many ready SQL jobs it takes from the run.
 *
 * One statement.  "lk" locks the run's row before anything else is
 * touched (the other parts wait for it through their EXISTS tests), which
 * keeps the lock order of every writer of runs.  The snapshot is older
 * than the lock, so the next job may have been taken meanwhile: its status
 * is checked again on the row's latest version, and then nothing is taken.
 * The job taken fills the slot the finished one frees, so the run's
 * max_parallel holds without a test.
 */
#define SP_JOB_END_SQL \
	"WITH lk AS (" \
	"  SELECT $4 AND %s NOT cancel_requested AND NOT halted" \
	"         AND (deadline IS NULL OR deadline > clock_timestamp())" \
	"         AS stay," \
	"         CASE WHEN deadline IS NOT NULL THEN" \
	"              greatest(1, (1000 * extract(epoch FROM" \
	"                       deadline - clock_timestamp()))::bigint)" \
	"         END AS left_ms, cancel_requested, inputs" \
	"    FROM stellapack_internal.run WHERE id = $1 FOR UPDATE)," \
	" done AS (" \
	"  UPDATE stellapack_internal.job_run" \
	"     SET status = 'succeeded', finished_at = clock_timestamp()," \
	"         result = $3::jsonb, error = NULL, sqlstate = NULL" \
	"   WHERE run_id = $1 AND job = $2 AND status = 'running'" \
	"     AND EXISTS (SELECT FROM lk)" \
	"     AND ($6::uuid IS NULL" \
	"          OR (lease_id = $6" \
	"              AND lease_expires_at > clock_timestamp()" \
	"              AND NOT (SELECT cancel_requested FROM lk)))" \
	"  RETURNING attempt, started_at)," \
	" nxt AS (" \
	"  UPDATE stellapack_internal.job_run jr" \
	"     SET status = 'running', attempt = jr.attempt + 1," \
	"         started_at = clock_timestamp(), finished_at = NULL," \
	"         worker = $5 %s" \
	"   WHERE (SELECT stay FROM lk) AND EXISTS (SELECT FROM done)" \
	"     AND jr.run_id = $1 AND jr.status = 'queued'" \
	"     AND jr.job = " SP_RUN_FIRST_QUEUED("%s") \
	"  RETURNING jr.job, jr.command, jr.timeout_ms, jr.attempt," \
	"            jr.lease_id, jr.id, jr.spec, jr.lease_expires_at)," \
	" took AS (SELECT count(*)::int AS n FROM nxt)," \
	" counted AS (" \
	"  UPDATE stellapack_internal.run x" \
	"     SET unfinished = x.unfinished - 1," \
	"         running = x.running - 1 + took.n," \
	"         ready_sql = x.ready_sql - %s" \
	"    FROM took, done" \
	"   WHERE x.id = $1" \
	"  RETURNING x.unfinished," \
	"            coalesce(x.deadline <= clock_timestamp(), false)" \
	"            AS late)" \
	" SELECT done.attempt, done.started_at, counted.unfinished," \
	"        EXISTS (SELECT FROM stellapack_internal.job_run d" \
	"                 WHERE d.run_id = $1 AND d.status = 'blocked'" \
	"                   AND $2 = ANY (d.needs))," \
	"        counted.late, nxt.job, nxt.command," \
	"        nxt.timeout_ms, nxt.attempt, lk.left_ms," \
	"        nxt.lease_id, nxt.id, $1, nxt.job, nxt.spec, lk.inputs," \
	"        nxt.attempt, nxt.lease_expires_at" \
	"   FROM lk, done, counted LEFT JOIN nxt ON true"

/* where the next external job's lease row begins in its result */
#define SP_JOB_END_LEASE_COL	11

/*
 * sp_job_succeeded records that the claimed job c succeeded with the
 * given result (JSON text, or NULL): its job run becomes final, its run's
 * counters move, and its "succeeded" line is stored after the lines
 * (SpLogLine *) the job left for its success.  When dependents may wait
 * on the job, or the run ends or is past its deadline, the SQL functions
 * take it from there.
 *
 * With "stay" set, the caller goes on with the next queued job of the same
 * run, when there is one, in the same statement, and the result is
 * SP_END_TOOK_NEXT: *next gets it.  An executor (ln NULL) takes SQL jobs;
 * a runner (ln set) takes an external job of the queues in ln, whose lease
 * row goes to ln->row.  An external job's lease is given: it must still
 * be the job's, unexpired, and its run not canceled.  When the job is not
 * running (or the lease fails), nothing is written and the result is
 * SP_END_NOT_RUNNING.  Runs inside the caller's transaction.
 */
SpEnd
sp_job_succeeded(SpClaim *c, pg_uuid_t *lease, const char *result,
				 List *lines, bool stay, const char *worker, SpClaim *next,
				 SpLeaseNext *ln)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[8];
	char		nulls[9] = "        ";
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int64		left_ms = 0;
	int			unfinished;
	bool		dependents;
	bool		late;
	int			attempt;
	bool		took;
	TimestampTz started;
	SpLogLine  *all;
	int			n = 0;
	SpRunEnd	end;
	int			ended = 0;
	ListCell   *lc;
	Datum		d;
	int			kind = ln != NULL;

	SPI_connect();
	if (job_end_plans[kind] == NULL)
	{
		Oid			types[8] = {UUIDOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID,
		UUIDOID, TEXTARRAYOID, INTERVALOID};

		if (kind == 0)
			job_end_plans[0] = sp_prepare_kept(psprintf(SP_JOB_END_SQL,
														"ready_sql > 0 AND",
														"",
														"q.kind = 'sql'",
														"took.n"),
											   8, types);
		else
			job_end_plans[1] = sp_prepare_kept(psprintf(SP_JOB_END_SQL, "",
														", lease_id = gen_random_uuid(),"
														" lease_expires_at = clock_timestamp() + $8,"
														" lease_ms = (1000 * extract(epoch FROM $8))::bigint",
														SP_EXTERNAL_IN_QUEUES("$7"),
														"0"),
											   8, types);
	}

	args[0] = UUIDPGetDatum(&c->run_id);
	args[1] = CStringGetTextDatum(c->job);
	args[2] = result ? CStringGetTextDatum(result) : (Datum) 0;
	args[3] = BoolGetDatum(stay && next != NULL);
	args[4] = CStringGetTextDatum(worker);
	args[5] = lease ? UUIDPGetDatum(lease) : (Datum) 0;
	args[6] = ln ? ln->queues : (Datum) 0;
	args[7] = ln ? ln->lease : (Datum) 0;
	if (!result)
		nulls[2] = 'n';
	if (!lease)
		nulls[5] = 'n';
	if (!ln || ln->queues_null)
		nulls[6] = 'n';
	if (!ln)
		nulls[7] = 'n';
	if (SPI_execute_plan(job_end_plans[kind], args, nulls, false, 1) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not record the end of job \"%s\"", c->job);
	if (SPI_processed != 1)
	{
		SPI_finish();
		return SP_END_NOT_RUNNING;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	attempt = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	started = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
	unfinished = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	dependents = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	late = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	d = SPI_getbinval(tup, desc, 10, &isnull);
	if (!isnull)
		left_ms = DatumGetInt64(d);
	(void) SPI_getbinval(tup, desc, 6, &isnull);
	took = !isnull && next != NULL;
	if (took)
	{
		MemoryContext old;

		sp_claim_clear(next);
		next->run_id = c->run_id;
		strlcpy(next->role, c->role, NAMEDATALEN);
		next->tenant = MemoryContextStrdup(TopMemoryContext, c->tenant);
		claim_fill(next, tup, desc, 6, left_ms);
		if (ln)
		{
			old = MemoryContextSwitchTo(caller);
			sp_copy_row(tup, desc, SP_JOB_END_LEASE_COL, SP_LEASE_COLUMNS,
						ln->row, ln->nulls);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();

	/*
	 * A run with nothing unfinished ends now (nothing waits on this job, and
	 * no next job was taken), so that its line goes with the job's.
	 */
	if (unfinished == 0 && !late)
		ended = sp_runs_finish(&c->run_id, 1, &end);

	/*
	 * The job's own lines, its "succeeded" line, the next one's "started",
	 * the run's "finished"
	 */
	all = palloc(sizeof(SpLogLine) * (list_length(lines) + 3));
	foreach(lc, lines)
		all[n++] = *(SpLogLine *) lfirst(lc);
	sp_succeeded_line(c->job, attempt, GetCurrentTimestamp() - started,
					  &all[n++]);
	if (took)
		sp_started_line(next, ln ? psprintf("runner %s", worker) : worker,
						&all[n++]);
	if (ended)
		all[n++] = end.line;
	sp_log_store(&c->run_id, all, n);
	sp_event(&c->run_id, c->job, "succeeded", c->tenant);
	if (took)
		sp_event(&c->run_id, next->job, "running", c->tenant);
	sp_runs_announce(&end, ended);

	/* jobs blocked on this one lose a need */
	if (dependents)
		sp_engine_call("release_dependents", &c->run_id, c->job);
	if (late)
		sp_run_ended(&c->run_id, late);
	return took ? SP_END_TOOK_NEXT : SP_END_DONE;
}

/*
 * sp_claim_clear frees what a claim holds and empties it.
 */
void
sp_claim_clear(SpClaim *c)
{
	if (c->tenant)
		pfree(c->tenant);
	if (c->command)
		pfree(c->command);
	memset(c, 0, sizeof(SpClaim));
}
