/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Storing run log lines and announcing them: every writer of a run's
 *	  log (the relay for lines raised inside SQL jobs, the engine for
 *	  system lines, external runners through the API) goes through
 *	  sp_log_store(), which gives out gap-free sequence numbers under the
 *	  run_seq row lock, inserts the lines and queues one NOTIFY per line
 *	  on the run's channel, delivered when the transaction commits.
 *
 * Because the row lock is held until commit, sequence order is commit
 * order: a reader that has seen line N and asks for what follows misses
 * nothing.  Payloads are compact JSON kept under the 8000-byte limit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "stellapack.h"

#define SP_NOTIFY_LIMIT		7999	/* NOTIFY payloads must stay below 8000 */


static const char *const sp_levels[] = {
	"debug", "info", "notice", "warning", "error", NULL
};

/*
 * sp_valid_level tells whether a log level is one the log knows.
 */
bool
sp_valid_level(const char *level)
{
	int			i;

	for (i = 0; sp_levels[i] != NULL; i++)
		if (strcmp(level, sp_levels[i]) == 0)
			return true;
	return false;
}

/*
 * sp_run_channel writes the name of a run's LISTEN channel into buf
 * (at least 48 bytes): "stellapack_run_" and the id's 32 hex digits.
 */
static void
sp_run_channel(pg_uuid_t *run_id, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	int			i;

	memcpy(buf, "stellapack_run_", 15);
	for (i = 0; i < UUID_LEN; i++)
	{
		buf[15 + 2 * i] = hex[run_id->data[i] >> 4];
		buf[15 + 2 * i + 1] = hex[run_id->data[i] & 0x0f];
	}
	buf[15 + 2 * UUID_LEN] = '\0';
}

/*
 * sp_notify_payload builds the compact JSON announcing one line.  The
 * message is cut on a character boundary, and the data left out, when the
 * whole would not fit; "truncated" then tells the reader to fetch the line
 * from the table.
 */
static char *
sp_notify_payload(const char *run_text, int64 seq, const char *ts_text,
				  SpLogLine *line)
{
	StringInfoData head;
	StringInfoData msg;
	StringInfoData out;
	int			msglen = strlen(line->message);
	int			cut = msglen;
	bool		truncated = false;
	int			room;

	initStringInfo(&head);
	appendStringInfo(&head, "{\"run\":\"%s\",\"seq\":" INT64_FORMAT
					 ",\"ts\":\"%s\",\"job\":", run_text, seq, ts_text);
	if (line->job)
		escape_json(&head, line->job);
	else
		appendStringInfoString(&head, "null");
	appendStringInfoString(&head, ",\"level\":");
	escape_json(&head, line->level);
	appendStringInfoString(&head, ",\"stream\":");
	escape_json(&head, line->stream);
	appendStringInfoString(&head, ",\"message\":");

	/* room for the message, keeping space for the flag and the brace */
	room = SP_NOTIFY_LIMIT - head.len - (int) strlen(",\"truncated\":true}");
	initStringInfo(&msg);
	for (;;)
	{
		char	   *part = pnstrdup(line->message, cut);

		resetStringInfo(&msg);
		escape_json(&msg, part);
		pfree(part);
		if (msg.len <= room || cut == 0)
			break;
		/* escaping can only grow the text: shrink by the overshoot */
		truncated = true;
		cut = pg_mbcliplen(line->message, cut,
						   Max(0, cut - (msg.len - room) - 1));
	}
	if (cut < msglen)
		truncated = true;

	initStringInfo(&out);
	appendBinaryStringInfo(&out, head.data, head.len);
	appendBinaryStringInfo(&out, msg.data, msg.len);
	if (line->data != NULL)
	{
		int			datalen = strlen(line->data);

		if (!truncated && out.len + 8 + datalen + 1 <= SP_NOTIFY_LIMIT)
			appendStringInfo(&out, ",\"data\":%s", line->data);
		else
			truncated = true;
	}
	if (truncated)
		appendStringInfoString(&out, ",\"truncated\":true");
	appendStringInfoChar(&out, '}');
	pfree(head.data);
	pfree(msg.data);
	return out.data;
}

/*
 * sp_text_array makes a text[] of one field of the lines (0 job, 1 level,
 * 2 stream, 3 message, 4 data), NULLs kept.
 */
static Datum
sp_text_array(SpLogLine *lines, int n, int field)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		const char *s = field == 0 ? lines[i].job :
			field == 1 ? lines[i].level :
			field == 2 ? lines[i].stream :
			field == 3 ? lines[i].message : lines[i].data;

		nulls[i] = (s == NULL);
		elems[i] = s ? CStringGetTextDatum(s) : (Datum) 0;
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/*
 * sp_log_announce queues the notification of one stored line, seq and ts
 * as the log table gave them, on its run's channel; sent at commit.
 */
static void
sp_log_announce(pg_uuid_t *run_id, int64 seq, Datum ts, SpLogLine *line)
{
	char		channel[64];
	char		run_text[UUID_LEN * 2 + 5];
	char		ts_text[MAXDATELEN + 1];
	char	   *payload;

	sp_run_channel(run_id, channel);
	strlcpy(run_text, DatumGetCString(DirectFunctionCall1(uuid_out,
												UUIDPGetDatum(run_id))),
			sizeof(run_text));
	JsonEncodeDateTime(ts_text, ts, TIMESTAMPTZOID, NULL);
	payload = sp_notify_payload(run_text, seq, ts_text, line);
	sp_announce(channel, payload);
	pfree(payload);
}

/*
 * store_one_run stores n lines of one run in one statement: the sequence
 * row is locked and moved on before the first line's time is taken, so
 * that time grows with seq.  The rows come back as (seq, ts) in line
 * order.  The cheapest statement for the common case: a job's lines.
 */
static void
store_one_run(pg_uuid_t *run_id, SpLogLine *lines, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[7];
	int			i;

	if (plan == NULL)
	{
		Oid			types[7] = {UUIDOID, INT8OID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		plan = sp_prepare_kept(
			"WITH s AS (UPDATE stellapack_internal.run_seq"
			"              SET last_seq = last_seq + $2"
			"            WHERE run_id = $1"
			"        RETURNING last_seq - $2 AS first, tenant),"
			" i AS (INSERT INTO stellapack_internal.log"
			"       (run_id, seq, ts, tenant, job, level, stream, message,"
			"        data)"
			"       SELECT $1, s.first + u.o, clock_timestamp(), s.tenant,"
			"              u.job, u.level, u.stream, u.message, u.data::jsonb"
			"         FROM s, unnest($3, $4, $5, $6, $7) WITH ORDINALITY"
			"           AS u(job, level, stream, message, data, o)"
			"       RETURNING seq, ts)"
			" SELECT seq, ts FROM i ORDER BY seq",
			7, types);
	}
	args[0] = UUIDPGetDatum(run_id);
	args[1] = Int64GetDatum(n);
	for (i = 0; i < 5; i++)
		args[2 + i] = sp_text_array(lines, n, i);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not store log lines");
}

/*
 * store_runs stores n lines of several runs (line i to runs[i]) in one
 * statement: each run's sequence row is locked and moved on by its number
 * of lines, and only then is the lines' time taken (the count waits for
 * every row of "s").  The rows come back as (seq, ts) in line order; a
 * line of a run without a sequence row has none.
 */
static void
store_runs(pg_uuid_t *runs, SpLogLine *lines, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[6];
	Datum	   *ids;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	if (plan == NULL)
	{
		Oid			types[6] = {UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		plan = sp_prepare_kept_opt(
			"WITH u AS ("
			"  SELECT * FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY"
			"    AS u(run_id, job, level, stream, message, data, o)),"
			" n AS (SELECT run_id, count(*) AS n FROM u GROUP BY run_id),"
			" s AS (UPDATE stellapack_internal.run_seq q"
			"          SET last_seq = q.last_seq + n.n"
			"         FROM n WHERE q.run_id = n.run_id"
			"     RETURNING q.run_id, q.last_seq - n.n AS first, q.tenant),"
			" t AS (SELECT clock_timestamp() AS ts"
			"         FROM (SELECT count(*) FROM s) c),"
			" w AS (SELECT u.*, s.tenant, t.ts, s.first + row_number() OVER"
			"                (PARTITION BY u.run_id ORDER BY u.o) AS seq"
			"         FROM u JOIN s ON s.run_id = u.run_id, t),"
			" i AS (INSERT INTO stellapack_internal.log"
			"       (run_id, seq, ts, tenant, job, level, stream, message,"
			"        data)"
			"       SELECT run_id, seq, ts, tenant, job, level, stream,"
			"              message, data::jsonb FROM w)"
			" SELECT seq, ts FROM w ORDER BY o",
			6, types, CURSOR_OPT_GENERIC_PLAN);
	}
	ids = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		ids[i] = UUIDPGetDatum(&runs[i]);
	args[0] = PointerGetDatum(construct_md_array(ids, NULL, 1, dims, lbs,
												 UUIDOID, UUID_LEN, false,
												 TYPALIGN_CHAR));
	for (i = 0; i < 5; i++)
		args[1 + i] = sp_text_array(lines, n, i);
	if (sp_execute_indexed(plan, args, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not store log lines");
}

/*
 * sp_log_store_runs appends n lines to the logs of their runs (line i
 * to run runs[i]; the lines of one run in their order) and queues their
 * notifications; returns the seq of the last line.  The caller must be
 * inside a transaction; the lines become visible, and the notifications
 * are sent, when it commits.
 *
 * Whoever stores lines of several runs at once holds the rows of those
 * runs (a claim, a batch of completions), so that two such writers never
 * wait for each other's sequence rows.
 */
int64
sp_log_store_runs(pg_uuid_t *runs, SpLogLine *lines, int n)
{
	int64		last = 0;
	bool		one_run = true;
	int			i;

	if (n <= 0)
		return 0;
	for (i = 1; i < n && one_run; i++)
		one_run = memcmp(&runs[i], &runs[0], UUID_LEN) == 0;

	SPI_connect();
	if (one_run)
		store_one_run(&runs[0], lines, n);
	else
		store_runs(runs, lines, n);

	/*
	 * One notification per line, sent at commit, in line order (which is
	 * seq order within each run).  A line without a row is one of a run
	 * that has no sequence row: that run does not exist.
	 */
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup;
		bool		isnull;

		if (i >= SPI_processed)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("run \"%s\" does not exist",
							DatumGetCString(DirectFunctionCall1(uuid_out,
												UUIDPGetDatum(&runs[i]))))));
		tup = SPI_tuptable->vals[i];
		last = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1,
										   &isnull));
		sp_log_announce(&runs[i], last,
						SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull),
						&lines[i]);
	}

	SPI_finish();
	return last;
}

/*
 * sp_log_store appends n lines to one run's log (see sp_log_store_runs).
 */
int64
sp_log_store(pg_uuid_t *run_id, SpLogLine *lines, int n)
{
	pg_uuid_t  *runs = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		runs[i] = *run_id;
	return sp_log_store_runs(runs, lines, n);
}

/*
 * log_append(run_id, jobs, levels, streams, messages, data) is the SQL
 * face of sp_log_store for the engine's own functions; arrays of the same
 * length, one element per line.
 */
PG_FUNCTION_INFO_V1(sp_log_append);
Datum
sp_log_append(PG_FUNCTION_ARGS)
{
	Datum	   *d[5];
	bool	   *isnull[5];
	int			count[5];
	SpLogLine  *lines;
	int			n;
	int			i;
	int			k;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run id and messages must not be null")));
	for (k = 0; k < 5; k++)
	{
		if (PG_ARGISNULL(k + 1))
		{
			d[k] = NULL;
			isnull[k] = NULL;
			count[k] = -1;
			continue;
		}
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(k + 1),
						  k == 4 ? JSONBOID : TEXTOID, -1, false,
						  TYPALIGN_INT, &d[k], &isnull[k], &count[k]);
	}
	n = count[3];
	for (k = 0; k < 5; k++)
		if (count[k] >= 0 && count[k] != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("log arrays must all have the same length")));

	lines = palloc0(sizeof(SpLogLine) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		SpLogLine  *l = &lines[i];

		if (isnull[3][i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("log message must not be null")));
		l->message = TextDatumGetCString(d[3][i]);
		l->job = (count[0] >= 0 && !isnull[0][i]) ?
			TextDatumGetCString(d[0][i]) : NULL;
		l->level = (count[1] >= 0 && !isnull[1][i]) ?
			TextDatumGetCString(d[1][i]) : "info";
		l->stream = (count[2] >= 0 && !isnull[2][i]) ?
			TextDatumGetCString(d[2][i]) : "system";
		l->data = (count[4] >= 0 && !isnull[4][i]) ?
			DatumGetCString(DirectFunctionCall1(jsonb_out, d[4][i])) : NULL;
		if (!sp_valid_level(l->level))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid log level \"%s\"", l->level),
					 errhint("Use debug, info, notice, warning or error.")));
	}
	PG_RETURN_INT64(sp_log_store(PG_GETARG_UUID_P(0), lines, n));
}
