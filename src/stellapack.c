/*-------------------------------------------------------------------------
 *
 * stellapack.c
 *	  Module entry: settings, shared memory, the commit-time wake-ups that
 *	  let executors start work without polling, and the small SQL-callable
 *	  functions the schema builds on.
 *
 * The engine itself lives in launcher.c (supervisor, launcher, relay and
 * timers) and executor.c (the pool that runs SQL jobs); the registry's
 * manifest checks in registry.c; log storage and NOTIFY in stream.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "stellapack.h"

PG_MODULE_MAGIC;

char	   *sp_database = NULL;
int			sp_max_workers = 4;
int			sp_runner_slice_ms = 50;
char	   *sp_tenant = NULL;

SpShared   *sp_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* what this backend's transaction will do when it commits */
typedef struct SpPendingCancel
{
	pg_uuid_t	run_id;
	char		job[SP_JOB_NAME_LEN];
	int			nest_level;		/* subtransaction that asked for it */
} SpPendingCancel;

static bool xact_callback_registered = false;
static int	pending_wakes = 0;
static bool pending_launcher_wake = false;
static bool pending_waiter_wake = false;
static List *pending_cancels = NIL;		/* in TopMemoryContext */
static int	my_waiter_index = -1;

void		_PG_init(void);
static void sp_shmem_request(void);
static void sp_shmem_startup(void);
static void sp_xact_callback(XactEvent event, void *arg);
static void sp_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg);

static Size
sp_shmem_size(void)
{
	return add_size(offsetof(SpShared, slots),
					mul_size(sizeof(SpSlot), sp_max_workers));
}

/*
 * _PG_init defines the settings and, when loaded through
 * shared_preload_libraries, asks for shared memory and registers the
 * supervisor, which starts the launcher once the database exists.
 */
void
_PG_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("stellapack.database",
							   "Database whose packs the launcher runs.",
							   NULL, &sp_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stellapack.max_workers",
							"Number of executors that run SQL jobs.",
							NULL, &sp_max_workers, 4, 1, 64,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stellapack.runner_slice",
							"How long a task runner may go on with one run's "
							"jobs before serving others.",
							"After a success, job_complete_and_claim() leases "
							"the run's next job only this long after the "
							"claim that gave the runner the run; 0 sends the "
							"runner back to the queue every time.",
							&sp_runner_slice_ms, 50, 0, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("stellapack.tenant",
							   "Tenant of this session's packs and runs.",
							   "Only a superuser can set it, for example "
							   "with ALTER ROLE ... SET.",
							   &sp_tenant, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);
	MarkGUCPrefixReserved("stellapack");

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sp_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sp_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stellapack");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sp_supervisor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "stellapack supervisor");
	snprintf(worker.bgw_type, BGW_MAXLEN, "stellapack supervisor");
	RegisterBackgroundWorker(&worker);
}

static void
sp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sp_shmem_size());
	RequestAddinShmemSpace(sp_announce_shmem_size());
}

static void
sp_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sp_shared = ShmemInitStruct("stellapack", sp_shmem_size(), &found);
	if (!found)
	{
		memset(sp_shared, 0, sp_shmem_size());
		SpinLockInit(&sp_shared->mutex);
		sp_shared->nslots = sp_max_workers;
	}
	sp_announce_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * sp_extension_exists tells whether the extension is created in this
 * database.  Needs a transaction.
 */
bool
sp_extension_exists(void)
{
	return OidIsValid(get_extension_oid("stellapack", true));
}

/*
 * sp_wake_executors sets the latches of up to n idle executors, taking
 * them off the idle list so that two wakers do not pick the same one.
 */
void
sp_wake_executors(int n)
{
	PGPROC	   *procs[64];
	int			nprocs = 0;
	int			i;

	if (sp_shared == NULL || n <= 0)
		return;
	SpinLockAcquire(&sp_shared->mutex);
	for (i = 0; i < sp_shared->nslots && nprocs < n; i++)
	{
		SpSlot	   *slot = &sp_shared->slots[i];

		if (slot->idle && slot->proc != NULL)
		{
			slot->idle = false;
			procs[nprocs++] = slot->proc;
		}
	}
	SpinLockRelease(&sp_shared->mutex);
	for (i = 0; i < nprocs; i++)
		SetLatch(&procs[i]->procLatch);
}

/*
 * sp_xact_callback carries out at commit what the transaction asked for:
 * waking executors, the launcher and pack_run_wait() callers, and
 * interrupting the executors of canceled jobs.  On abort it forgets it.
 */
static void
sp_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event == XACT_EVENT_COMMIT && sp_shared != NULL)
	{
		PGPROC	   *launcher;
		PGPROC	   *waiters[SP_MAX_WAITERS];
		int			nwaiters = 0;
		pid_t		victims[64];
		int			nvictims = 0;
		int			i;

		sp_wake_executors(pending_wakes);

		SpinLockAcquire(&sp_shared->mutex);
		launcher = sp_shared->launcher;
		if (pending_launcher_wake)
			sp_shared->tick_requested = true;
		if (pending_waiter_wake)
		{
			for (i = 0; i < SP_MAX_WAITERS; i++)
				if (sp_shared->waiters[i] != NULL)
					waiters[nwaiters++] = sp_shared->waiters[i];
		}
		foreach(lc, pending_cancels)
		{
			SpPendingCancel *pc = lfirst(lc);

			for (i = 0; i < sp_shared->nslots && nvictims < 64; i++)
			{
				SpSlot	   *slot = &sp_shared->slots[i];

				if (slot->state == SP_SLOT_RUNNING &&
					memcmp(&slot->run_id, &pc->run_id,
						   sizeof(pg_uuid_t)) == 0 &&
					strcmp(slot->job, pc->job) == 0)
				{
					slot->cancel = true;
					victims[nvictims++] = slot->pid;
				}
			}
		}
		SpinLockRelease(&sp_shared->mutex);

		if (pending_launcher_wake && launcher != NULL)
			SetLatch(&launcher->procLatch);
		for (i = 0; i < nwaiters; i++)
			SetLatch(&waiters[i]->procLatch);
		for (i = 0; i < nvictims; i++)
			kill(victims[i], SIGINT);
	}

	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
	{
		pending_wakes = 0;
		pending_launcher_wake = false;
		pending_waiter_wake = false;
		list_free_deep(pending_cancels);
		pending_cancels = NIL;
		if (my_waiter_index >= 0 && sp_shared != NULL)
		{
			SpinLockAcquire(&sp_shared->mutex);
			sp_shared->waiters[my_waiter_index] = NULL;
			SpinLockRelease(&sp_shared->mutex);
			my_waiter_index = -1;
		}
	}
}

/*
 * sp_subxact_callback forgets the cancels asked for in a subtransaction
 * that rolls back: its update of the run is undone, so must the signal be.
 */
static void
sp_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			level;
	List	   *keep = NIL;
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB || pending_cancels == NIL)
		return;
	level = GetCurrentTransactionNestLevel();
	foreach(lc, pending_cancels)
	{
		SpPendingCancel *pc = lfirst(lc);

		if (pc->nest_level >= level)
			pfree(pc);
		else
			keep = lappend(keep, pc);
	}
	list_free(pending_cancels);
	pending_cancels = NIL;
	if (keep != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pending_cancels = list_copy(keep);
		MemoryContextSwitchTo(old);
		list_free(keep);
	}
}

static void
sp_register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(sp_xact_callback, NULL);
		RegisterSubXactCallback(sp_subxact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * wake_at_commit(executors, launcher, waiters) asks for wake-ups when the
 * current transaction commits: that many idle executors, the launcher
 * (whose timers changed), and the sessions in pack_run_wait().
 */
PG_FUNCTION_INFO_V1(sp_wake_at_commit);
Datum
sp_wake_at_commit(PG_FUNCTION_ARGS)
{
	sp_register_xact_callback();
	if (!PG_ARGISNULL(0))
		pending_wakes += PG_GETARG_INT32(0);
	if (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1))
		pending_launcher_wake = true;
	if (!PG_ARGISNULL(2) && PG_GETARG_BOOL(2))
		sp_wake_waiters_at_commit();
	PG_RETURN_VOID();
}

/*
 * sp_wake_waiters_at_commit wakes, once the transaction commits, the
 * sessions waiting in pack_run_wait(), which look at their runs again.
 */
void
sp_wake_waiters_at_commit(void)
{
	sp_register_xact_callback();
	pending_waiter_wake = true;
}

/*
 * cancel_at_commit(run_id, job) interrupts, once the transaction commits,
 * the executor running that job, which then records it as canceled.
 */
PG_FUNCTION_INFO_V1(sp_cancel_at_commit);
Datum
sp_cancel_at_commit(PG_FUNCTION_ARGS)
{
	SpPendingCancel *pc;
	MemoryContext old;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_VOID();
	sp_register_xact_callback();
	old = MemoryContextSwitchTo(TopMemoryContext);
	pc = palloc0(sizeof(SpPendingCancel));
	memcpy(&pc->run_id, PG_GETARG_UUID_P(0), sizeof(pg_uuid_t));
	strlcpy(pc->job, text_to_cstring(PG_GETARG_TEXT_PP(1)), SP_JOB_NAME_LEN);
	pc->nest_level = GetCurrentTransactionNestLevel();
	pending_cancels = lappend(pending_cancels, pc);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/*
 * wait_for_change(timeout_ms) sleeps until a run finishes somewhere or the
 * timeout passes.  The first call of a transaction only registers the
 * session and returns at once, so that the caller checks again after
 * registering and cannot miss a wake-up.
 */
PG_FUNCTION_INFO_V1(sp_wait_for_change);
Datum
sp_wait_for_change(PG_FUNCTION_ARGS)
{
	int			timeout = PG_ARGISNULL(0) ? 1000 : PG_GETARG_INT32(0);
	int			i;

	if (sp_shared == NULL)
	{
		/* no engine in this server: plain sleep */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
						 WL_EXIT_ON_PM_DEATH, Max(timeout, 1),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		PG_RETURN_VOID();
	}

	if (my_waiter_index < 0)
	{
		sp_register_xact_callback();
		SpinLockAcquire(&sp_shared->mutex);
		for (i = 0; i < SP_MAX_WAITERS; i++)
		{
			if (sp_shared->waiters[i] == NULL)
			{
				sp_shared->waiters[i] = MyProc;
				my_waiter_index = i;
				break;
			}
		}
		SpinLockRelease(&sp_shared->mutex);
		if (my_waiter_index >= 0)
			PG_RETURN_VOID();
		/* all places taken: fall back to sleeping a little */
		timeout = Min(timeout, 50);
	}

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(timeout, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	PG_RETURN_VOID();
}

/*
 * sp_current_tenant is the tenant of this session: the stellapack.tenant
 * setting when set, else the "tenant" claim of the PostgREST request
 * (request.jwt.claims), else "default".  A claim that is not a string is
 * taken as its JSON text, as the ->> operator gives it.  palloc'd.
 */
char *
sp_current_tenant(void)
{
	const char *claims;

	if (sp_tenant != NULL && sp_tenant[0] != '\0')
		return pstrdup(sp_tenant);
	claims = GetConfigOption("request.jwt.claims", true, false);
	if (claims != NULL && claims[0] != '\0')
	{
		Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											CStringGetDatum(claims)));
		JsonbValue	v;
		char	   *t = NULL;

		if (JB_ROOT_IS_OBJECT(jb) &&
			getKeyJsonValueFromContainer(&jb->root, "tenant", 6, &v))
		{
			if (v.type == jbvString)
				t = pnstrdup(v.val.string.val, v.val.string.len);
			else if (v.type != jbvNull)
			{
				Jsonb	   *one = JsonbValueToJsonb(&v);

				t = JsonbToCString(NULL, &one->root, VARSIZE(one));
			}
		}
		if (t != NULL && t[0] != '\0')
			return t;
	}
	return pstrdup("default");
}

/*
 * current_tenant() is sp_current_tenant for SQL (row-level security and
 * the SQL functions).
 */
PG_FUNCTION_INFO_V1(sp_current_tenant_sql);
Datum
sp_current_tenant_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(sp_current_tenant()));
}

/*
 * calling_role() is the role on whose behalf an API function runs: inside
 * a job, the role that started the run; elsewhere the session's current
 * role outside any SECURITY DEFINER function (so that a definer function
 * can never lend its owner's rights to a run).
 */
PG_FUNCTION_INFO_V1(sp_calling_role);
Datum
sp_calling_role(PG_FUNCTION_ARGS)
{
	Oid			role;

	role = OidIsValid(sp_job_role) ? sp_job_role : GetOuterUserId();
	PG_RETURN_DATUM(DirectFunctionCall1(namein,
				CStringGetDatum(GetUserNameFromId(role, false))));
}

/*
 * current_job() returns the run id and job name of the job this backend
 * runs, or NULLs when it is not an executor inside a job.
 */
PG_FUNCTION_INFO_V1(sp_current_job);
Datum
sp_current_job(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {true, true};
	pg_uuid_t	run_id;
	const char *job;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (sp_in_job(&run_id, &job))
	{
		pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

		*u = run_id;
		values[0] = UUIDPGetDatum(u);
		values[1] = CStringGetTextDatum(job);
		nulls[0] = nulls[1] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values,
													  nulls)));
}

/*
 * log(message, level, data) writes one line into the log of the running
 * job's run.  The line travels through the executor's queue to the relay,
 * which stores it and notifies listeners at once, while the job runs on.
 */
PG_FUNCTION_INFO_V1(sp_log);
Datum
sp_log(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	const char *level = PG_ARGISNULL(1) ? "info" :
		text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (!sp_in_job(NULL, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stellapack.log() can only be called inside a job"),
				 errhint("External runners use stellapack.pack_run_log_append().")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("log message must not be null")));
	if (!sp_valid_level(level))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid log level \"%s\"", level),
				 errhint("Use debug, info, notice, warning or error.")));

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, level, strlen(level) + 1);
	if (PG_ARGISNULL(2))
		appendStringInfoChar(&buf, '\0');
	else
	{
		Datum		d = DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(2));
		char	   *s = DatumGetCString(d);

		appendBinaryStringInfo(&buf, s, strlen(s) + 1);
	}
	appendStringInfoString(&buf, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	sp_executor_send(SP_MSG_LOG, buf.data, buf.len + 1);
	pfree(buf.data);
	PG_RETURN_VOID();
}

/*
 * deferred_log(message, data) adds a system line that is written with the
 * job's outcome, in the same transaction: used for lines that must only
 * exist if the job's work commits, such as an artifact's announcement.
 */
PG_FUNCTION_INFO_V1(sp_deferred_log);
Datum
sp_deferred_log(PG_FUNCTION_ARGS)
{
	char	   *data = NULL;

	if (!sp_in_job(NULL, NULL) || PG_ARGISNULL(0))
		PG_RETURN_VOID();
	if (!PG_ARGISNULL(1))
		data = DatumGetCString(DirectFunctionCall1(jsonb_out,
												   PG_GETARG_DATUM(1)));
	sp_defer_log(text_to_cstring(PG_GETARG_TEXT_PP(0)), data);
	PG_RETURN_VOID();
}

/*
 * xid_is_mine(xid) tells whether a transaction id belongs to this
 * session's transaction, subtransactions included.
 */
PG_FUNCTION_INFO_V1(sp_xid_is_mine);
Datum
sp_xid_is_mine(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(
						DatumGetTransactionId(PG_GETARG_DATUM(0))));
}

/*
 * announce(channel, payload) sends a notification at commit; see
 * sp_announce.
 */
PG_FUNCTION_INFO_V1(sp_announce_sql);
Datum
sp_announce_sql(PG_FUNCTION_ARGS)
{
	sp_announce(text_to_cstring(PG_GETARG_TEXT_PP(0)),
				text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/*
 * worker_status() lists the launcher and the executors of the pool with
 * what each one is doing and since when.
 */
PG_FUNCTION_INFO_V1(sp_worker_status);
Datum
sp_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (sp_shared == NULL)
		return (Datum) 0;

	for (i = -1; i < sp_shared->nslots; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, true, true, true};
		SpSlot		copy;
		pid_t		lpid;

		SpinLockAcquire(&sp_shared->mutex);
		lpid = sp_shared->launcher_pid;
		if (i >= 0)
			copy = sp_shared->slots[i];
		SpinLockRelease(&sp_shared->mutex);

		if (i < 0)
		{
			if (lpid == 0)
				continue;
			values[0] = Int32GetDatum(lpid);
			values[1] = CStringGetTextDatum("launcher");
			values[2] = CStringGetTextDatum("serving");
		}
		else
		{
			const char *state;

			if (copy.state == SP_SLOT_FREE || copy.pid == 0)
				continue;
			state = copy.state == SP_SLOT_RUNNING ? "running" :
				copy.state == SP_SLOT_IDLE ? "idle" : "starting";
			values[0] = Int32GetDatum(copy.pid);
			values[1] = CStringGetTextDatum("executor");
			values[2] = CStringGetTextDatum(state);
			if (copy.state == SP_SLOT_RUNNING)
			{
				pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

				*u = copy.run_id;
				values[3] = UUIDPGetDatum(u);
				values[4] = CStringGetTextDatum(copy.job);
				nulls[3] = nulls[4] = false;
			}
			if (copy.since != 0)
			{
				values[5] = TimestampTzGetDatum(copy.since);
				nulls[5] = false;
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}
