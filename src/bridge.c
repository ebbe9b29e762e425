/*-------------------------------------------------------------------------
 *
 * bridge.c
 *	  The task-runner bridge's two hot calls in C: job_claim(), which
 *	  leases runnable external jobs to a runner, and job_complete(), which
 *	  records a lease's outcome.  A success goes through the same path as
 *	  an executor's (sp_job_succeeded); every refusal (unknown, ended or
 *	  expired lease, canceled run) and every failure goes through the SQL
 *	  functions, which raise the errors a runner acts on.
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
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "stellapack.h"

#define SP_CLAIM_COLUMNS	8

static SPIPlanPtr candidates_plan = NULL;
static SPIPlanPtr lease_plan = NULL;
static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr row_plan = NULL;
static SPIPlanPtr tenant_plan = NULL;

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
 * current_tenant returns stellapack.current_tenant(), palloc'd in the
 * caller's context.  Called inside an SPI connection.
 */
static char *
current_tenant(MemoryContext cxt)
{
	if (tenant_plan == NULL)
		tenant_plan = sp_prepare_kept("SELECT stellapack.current_tenant()",
									  0, NULL);
	if (SPI_execute_plan(tenant_plan, NULL, NULL, true, 1) !=
		SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the current tenant");
	return MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1));
}

/*
 * lease_one tries to lease job "job" of run "run" to a runner: the run is
 * locked with SKIP LOCKED (a claimer never waits for another) and must have
 * room under max_parallel; the job must still be queued on the row's latest
 * version.  On success the row of the result is stored into values/nulls,
 * the "started" line and the events are written, and true is returned.
 */
static bool
lease_one(Datum run, Datum job, const char *worker, Datum lease,
		  Datum *values, bool *nulls)
{
	Datum		args[4];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			i;
	SpClaim		c;
	SpLogLine	line;
	bool		was_pending;

	if (lease_plan == NULL)
	{
		Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, INTERVALOID};

		lease_plan = sp_prepare_kept(
			"WITH r AS ("
			"  SELECT status, inputs, tenant FROM stellapack_internal.run"
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
			"     AND jr.job = $2 AND jr.status = 'queued'"
			"     AND jr.not_before IS NULL"
			"  RETURNING jr.lease_id, jr.id, jr.spec, jr.attempt,"
			"            jr.lease_expires_at),"
			" u AS ("
			"  UPDATE stellapack_internal.run x"
			"     SET running = x.running + 1,"
			"         dispatched_at = clock_timestamp(), status = 'running',"
			"         started_at = coalesce(x.started_at, clock_timestamp())"
			"    FROM j WHERE x.id = $1"
			"  RETURNING x.id)"
			" SELECT j.lease_id, j.id, $1, $2, j.spec, r.inputs, j.attempt,"
			"        j.lease_expires_at, r.status, r.tenant"
			"   FROM r, j, u",
			4, types);
	}
	args[0] = run;
	args[1] = job;
	args[2] = CStringGetTextDatum(worker);
	args[3] = lease;
	if (SPI_execute_plan(lease_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lease a job");
	if (SPI_processed != 1)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	for (i = 0; i < SP_CLAIM_COLUMNS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		values[i] = SPI_getbinval(tup, desc, i + 1, &nulls[i]);
		if (!nulls[i])
			values[i] = datumCopy(values[i], att->attbyval, att->attlen);
	}

	memset(&c, 0, sizeof(c));
	memcpy(&c.run_id, DatumGetUUIDP(run), sizeof(pg_uuid_t));
	text_to_cstring_buffer(DatumGetTextPP(job), c.job, SP_JOB_NAME_LEN);
	c.attempt = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	was_pending = strcmp(SPI_getvalue(tup, desc, 9), "pending") == 0;
	c.tenant = SPI_getvalue(tup, desc, 10);

	sp_started_line(&c, psprintf("runner %s", worker), &line);
	sp_log_store(&c.run_id, &line, 1);
	if (was_pending)
		sp_event(&c.run_id, NULL, "running", c.tenant);
	sp_event(&c.run_id, c.job, "running", c.tenant);
	return true;
}

/*
 * job_claim(worker, queues, lease, max_jobs) leases up to max_jobs
 * runnable external jobs of the given queues (all when NULL) of the
 * caller's tenant.  Candidates are read without locks in the order of the
 * queue index (each run's first jobs before anyone's later ones) and tried
 * in a random order, so that concurrent runners spread over them; a job
 * another runner took is passed over, and up to three rounds are made.
 */
PG_FUNCTION_INFO_V1(sp_job_claim);
Datum
sp_job_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext per_query;
	char	   *worker;
	Datum		lease;
	int			max_jobs;
	Interval   *iv;
	char	   *tenant;
	int			n = 0;
	int			round;

	if (PG_ARGISNULL(0) ||
		strlen(worker = text_to_cstring(PG_GETARG_TEXT_PP(0))) < 1 ||
		pg_mbstrlen(worker) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("worker name must be 1 to 200 characters")));
	iv = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	if (iv == NULL ||
		interval_compare(iv, "1 second") < 0 ||
		interval_compare(iv, "1 day") > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be from 1 second to 1 day")));
	lease = IntervalPGetDatum(iv);
	max_jobs = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3);
	if (max_jobs < 1 || max_jobs > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_jobs must be from 1 to 1000")));

	InitMaterializedSRF(fcinfo, 0);
	per_query = rsinfo->econtext->ecxt_per_query_memory;

	SPI_connect();
	tenant = current_tenant(caller);
	if (candidates_plan == NULL)
	{
		Oid			types[3] = {TEXTARRAYOID, TEXTOID, INT4OID};

		candidates_plan = sp_prepare_kept(
			"SELECT c.run_id, c.job FROM ("
			"  SELECT jr.run_id, jr.job FROM stellapack_internal.job_run jr"
			"   WHERE jr.status = 'queued' AND jr.kind = 'external'"
			"     AND jr.not_before IS NULL"
			"     AND ($1::text[] IS NULL OR jr.queue = ANY ($1))"
			"     AND jr.tenant = $2"
			"   ORDER BY jr.queue, jr.ordinal LIMIT $3) c"
			" ORDER BY random()",
			3, types);
	}

	for (round = 0; round < 3 && n < max_jobs; round++)
	{
		Datum		args[3];
		char		nulls[3] = "   ";
		SPITupleTable *cands;
		uint64		ncands;
		uint64		k;

		args[0] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
		nulls[0] = PG_ARGISNULL(1) ? 'n' : ' ';
		args[1] = CStringGetTextDatum(tenant);
		args[2] = Int32GetDatum(Max(32, (max_jobs - n) * 4));
		if (SPI_execute_plan(candidates_plan, args, nulls, true, 0) !=
			SPI_OK_SELECT)
			elog(ERROR, "could not read the queued external jobs");
		cands = SPI_tuptable;
		ncands = SPI_processed;
		if (ncands == 0)
			break;

		for (k = 0; k < ncands && n < max_jobs; k++)
		{
			Datum		values[SP_CLAIM_COLUMNS];
			bool		isnull[SP_CLAIM_COLUMNS];
			bool		dummy;
			MemoryContext old;
			bool		leased;

			/* the row is copied where the result set lives */
			old = MemoryContextSwitchTo(per_query);
			leased = lease_one(SPI_getbinval(cands->vals[k], cands->tupdesc, 1,
											 &dummy),
							   SPI_getbinval(cands->vals[k], cands->tupdesc, 2,
											 &dummy),
							   worker, lease, values, isnull);
			if (leased)
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 values, isnull);
			MemoryContextSwitchTo(old);
			if (leased)
				n++;
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * job_complete(lease_id, succeeded, result, error) records the outcome of
 * a leased job and returns its job_runs row.  A success with a lease that
 * is still good goes through sp_job_succeeded; everything else goes
 * through stellapack_internal.lease_job() (which raises the errors a
 * runner acts on) and job_end().
 */
PG_FUNCTION_INFO_V1(sp_job_complete);
Datum
sp_job_complete(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	TupleDesc	rowdesc;
	pg_uuid_t  *lease;
	bool		succeeded;
	char	   *result = NULL;
	SpClaim		c;
	bool		done = false;
	Datum		args[6];
	char		nulls[6] = "      ";
	Datum	   *values;
	bool	   *isnull;
	HeapTuple	row;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("succeeded must not be null")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lease_id must not be null")));
	if (get_call_result_type(fcinfo, NULL, &rowdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "job_complete must return a row");
	lease = PG_GETARG_UUID_P(0);
	succeeded = PG_GETARG_BOOL(1);
	if (!PG_ARGISNULL(2))
		result = DatumGetCString(DirectFunctionCall1(jsonb_out,
													 PG_GETARG_DATUM(2)));

	SPI_connect();
	memset(&c, 0, sizeof(c));
	if (lookup_plan == NULL)
	{
		Oid			ltypes[1] = {UUIDOID};
		Oid			rtypes[2] = {UUIDOID, TEXTOID};

		lookup_plan = sp_prepare_kept(
			"SELECT run_id, job, tenant FROM stellapack_internal.job_run"
			" WHERE lease_id = $1 AND tenant = stellapack.current_tenant()",
			1, ltypes);
		row_plan = sp_prepare_kept(
			"SELECT * FROM stellapack.job_runs WHERE run_id = $1 AND job = $2",
			2, rtypes);
	}
	args[0] = UUIDPGetDatum(lease);
	if (SPI_execute_plan(lookup_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look the lease up");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		dummy;

		memcpy(&c.run_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &dummy)),
			   sizeof(pg_uuid_t));
		strlcpy(c.job, SPI_getvalue(tup, desc, 2), SP_JOB_NAME_LEN);
		c.tenant = MemoryContextStrdup(caller, SPI_getvalue(tup, desc, 3));
		if (succeeded)
			done = sp_job_succeeded(&c, lease, result, NIL, false, "",
									NULL) != SP_END_NOT_RUNNING;
	}

	if (!done)
	{
		HeapTuple	tup;
		TupleDesc	desc;
		bool		dummy;

		/* raises the error that fits, or locks the job if it is fine */
		args[0] = UUIDPGetDatum(lease);
		if (SPI_execute_with_args("SELECT run_id, job FROM"
								  " stellapack_internal.lease_job($1, true)",
								  1, (Oid[]) {UUIDOID}, args, NULL, false,
								  1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not check lease");
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		memcpy(&c.run_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &dummy)),
			   sizeof(pg_uuid_t));
		strlcpy(c.job, SPI_getvalue(tup, desc, 2), SP_JOB_NAME_LEN);

		args[0] = UUIDPGetDatum(&c.run_id);
		args[1] = CStringGetTextDatum(c.job);
		args[2] = CStringGetTextDatum(succeeded ? "succeeded" : "failed");
		if (succeeded)
			nulls[3] = 'n';
		else if (PG_ARGISNULL(3))
			args[3] = CStringGetTextDatum("the runner reported a failure");
		else
			args[3] = PG_GETARG_DATUM(3);
		nulls[4] = 'n';
		args[5] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
		nulls[5] = PG_ARGISNULL(2) ? 'n' : ' ';
		if (SPI_execute_with_args("SELECT stellapack_internal.job_end($1, $2,"
								  " $3, $4, $5, $6)",
								  6, (Oid[]) {UUIDOID, TEXTOID, TEXTOID,
									  TEXTOID, TEXTOID, JSONBOID},
								  args, nulls, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not record the end of job \"%s\"", c.job);
	}

	/* the job's row, as the job_runs view shows it */
	args[0] = UUIDPGetDatum(&c.run_id);
	args[1] = CStringGetTextDatum(c.job);
	if (SPI_execute_plan(row_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read job \"%s\"", c.job);
	values = palloc(sizeof(Datum) * rowdesc->natts);
	isnull = palloc(sizeof(bool) * rowdesc->natts);
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values,
					  isnull);
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		row = heap_form_tuple(BlessTupleDesc(rowdesc), values, isnull);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(row));
}
