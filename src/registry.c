/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  The server side of pack registration: checks a pack name and its
 *	  manifest with the manifest module and hands back the canonical text,
 *	  its digest and the number of jobs, or raises the error in
 *	  PostgreSQL's style with a SQLSTATE a client can act on.
 *
 * Storing versions is done in SQL (stellapack.pack_register), under the
 * pack row's lock; this file only bridges to manifest.c, which has no
 * server headers and allocates with malloc.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "manifest.h"

/*
 * manifest_canonicalize(pack, manifest) validates both and returns
 * (canonical, digest, job_count).  Nothing is stored here.
 */
PG_FUNCTION_INFO_V1(sp_manifest_canonicalize);
Datum
sp_manifest_canonicalize(PG_FUNCTION_ARGS)
{
	char	   *pack = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *src = PG_GETARG_TEXT_PP(1);
	TupleDesc	tupdesc;
	ManifestError err;
	Manifest   *m;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			sqlstate;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (!manifest_valid_name(pack))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid pack name \"%s\"", pack),
				 errdetail("%s", MANIFEST_NAME_RULES_DETAIL)));

	memset(&err, 0, sizeof(err));
	m = manifest_parse(VARDATA_ANY(src), VARSIZE_ANY_EXHDR(src), &err);
	if (m == NULL)
	{
		switch (err.kind)
		{
			case MANIFEST_ERR_SYNTAX:
				sqlstate = ERRCODE_INVALID_TEXT_REPRESENTATION;
				break;
			case MANIFEST_ERR_NOMEM:
				sqlstate = ERRCODE_OUT_OF_MEMORY;
				break;
			default:
				sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
				break;
		}
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("%s", err.message),
				 err.detail[0] ? errdetail("%s", err.detail) : 0,
				 errcontext("manifest of pack \"%s\"", pack)));
	}

	PG_TRY();
	{
		values[0] = PointerGetDatum(cstring_to_text_with_len(m->canonical,
															 m->canonical_len));
		values[1] = CStringGetTextDatum(m->digest);
		values[2] = Int32GetDatum(m->n_jobs);
	}
	PG_FINALLY();
	{
		manifest_free(m);
	}
	PG_END_TRY();

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values,
													  nulls)));
}
