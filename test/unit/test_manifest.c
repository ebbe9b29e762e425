/*-------------------------------------------------------------------------
 *
 * test_manifest.c
 *	  Unit tests for the manifest parser (src/manifest.c) and SHA-256
 *	  (src/sha256.c), run without a server.
 *
 * Prints one "ok N - ..." or "not ok N - ..." line per check, then a final
 * "N passed, M failed" line, and exits with status 1 if anything failed.
 * The build defines MANIFEST_TEST_ALLOCATOR, so every allocation of the
 * module (and, through json_set_alloc_funcs, of jansson) goes through the
 * counting allocator below; that lets the tests count live blocks and make
 * any chosen allocation fail.
 *
 * Set MANIFEST_TEST_TIME_SCALE to multiply the time limits of the speed
 * checks (the asan and valgrind targets do).
 *
 * IDENTIFICATION
 *	  test/unit/test_manifest.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "manifest.h"
#include "sha256.h"

/* ----------------------------------------------------------------
 *		Harness
 * ----------------------------------------------------------------
 */

static int	n_passed = 0;
static int	n_failed = 0;

/*
 * Report one check: print an "ok" or "not ok" line numbered in sequence.
 * Returns cond so that callers can print diagnostics after a failure.
 */
static bool
__attribute__((format(printf, 2, 3)))
check(bool cond, const char *fmt,...)
{
	va_list		ap;

	printf("%s %d - ", cond ? "ok" : "not ok", n_passed + n_failed + 1);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (cond)
		n_passed++;
	else
		n_failed++;
	return cond;
}

/*
 * Print a diagnostic line, prefixed with "# " so it cannot be taken for a
 * test result.
 */
static void
__attribute__((format(printf, 1, 2)))
diag(const char *fmt,...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* ----------------------------------------------------------------
 *		Counting, failing allocator
 * ----------------------------------------------------------------
 */

static long alloc_calls = 0;	/* malloc/realloc calls so far */
static long alloc_fail_at = 0;	/* fail call number N; 0 = never */
static bool alloc_failed = false;	/* did an injected failure happen? */
static long alloc_live = 0;		/* blocks allocated and not yet freed */

void	   *manifest_test_malloc(size_t size);
void	   *manifest_test_realloc(void *ptr, size_t size);
void		manifest_test_free(void *ptr);

/*
 * malloc for the module under test and for jansson, failing on request.
 */
void *
manifest_test_malloc(size_t size)
{
	void	   *p;

	if (++alloc_calls == alloc_fail_at)
	{
		alloc_failed = true;
		return NULL;
	}
	p = malloc(size);
	if (p != NULL)
		alloc_live++;
	return p;
}

/*
 * realloc for the module under test, failing on request.
 */
void *
manifest_test_realloc(void *ptr, size_t size)
{
	void	   *p;

	if (++alloc_calls == alloc_fail_at)
	{
		alloc_failed = true;
		return NULL;
	}
	p = realloc(ptr, size);
	if (p != NULL && ptr == NULL)
		alloc_live++;
	return p;
}

/*
 * free for the module under test and for jansson.
 */
void
manifest_test_free(void *ptr)
{
	if (ptr != NULL)
		alloc_live--;
	free(ptr);
}

/* ----------------------------------------------------------------
 *		Helpers
 * ----------------------------------------------------------------
 */

/* A growable string for building test input. */
typedef struct Str
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Str;

/*
 * Append formatted text to a Str, growing it as needed.
 */
static void
__attribute__((format(printf, 2, 3)))
str_add(Str *s, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (s->len + (size_t) n + 1 > s->cap)
	{
		while (s->len + (size_t) n + 1 > s->cap)
			s->cap = s->cap ? s->cap * 2 : 1024;
		s->data = realloc(s->data, s->cap);
		if (s->data == NULL)
		{
			fprintf(stderr, "out of memory in test\n");
			exit(2);
		}
	}
	va_start(ap, fmt);
	vsnprintf(s->data + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	s->len += (size_t) n;
}

/*
 * Copy a JSON template written with single quotes, turning them into
 * double quotes, so that test manifests stay readable in C source.
 */
static char *
jq(const char *tmpl)
{
	char	   *s = strdup(tmpl);
	char	   *c;

	for (c = s; *c != '\0'; c++)
	{
		if (*c == '\'')
			*c = '"';
	}
	return s;
}

/*
 * Parse a single-quoted JSON template (see jq()).
 */
static Manifest *
parse_q(const char *tmpl, ManifestError *err)
{
	char	   *text = jq(tmpl);
	Manifest   *m = manifest_parse(text, strlen(text), err);

	free(text);
	return m;
}

/*
 * Return the digest of a single-quoted template into out (65 bytes), or
 * the error message prefixed with "ERROR: " if it does not parse.
 */
static void
digest_q(const char *tmpl, char *out, size_t outlen)
{
	ManifestError err;
	Manifest   *m = parse_q(tmpl, &err);

	if (m == NULL)
		snprintf(out, outlen, "ERROR: %s", err.message);
	else
		snprintf(out, outlen, "%s", m->digest);
	manifest_free(m);
}

/*
 * Milliseconds on a monotonic clock.
 */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/*
 * The time limit for speed checks, scaled by MANIFEST_TEST_TIME_SCALE.
 */
static double
time_limit_ms(double base)
{
	const char *scale = getenv("MANIFEST_TEST_TIME_SCALE");

	if (scale != NULL && atof(scale) > 0)
		return base * atof(scale);
	return base;
}

/*
 * Tell whether a message is non-empty printable ASCII.
 */
static bool
is_printable_ascii(const char *s)
{
	for (; *s != '\0'; s++)
	{
		if (*s < 0x20 || *s > 0x7e)
			return false;
	}
	return true;
}

/* ----------------------------------------------------------------
 *		SHA-256
 * ----------------------------------------------------------------
 */

/*
 * Check SHA-256 against digests computed with sha256sum(1).
 */
static void
test_sha256(void)
{
	static const struct
	{
		const char *input;
		const char *hex;
	}			vectors[] =
	{
		{"",
		 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc",
		 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	};
	/* n times 'a', around the padding boundaries */
	static const struct
	{
		size_t		n;
		const char *hex;
	}			runs[] =
	{
		{55,
		 "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{56,
		 "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
		{63,
		 "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
		{64,
		 "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
		{65,
		 "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
		{119,
		 "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
		{120,
		 "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
		{1000000,
		 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	};
	const char *pattern_hex =
		"172c15dc2e12b50e523d8e657cbe7fbb11c1053252bbf1e1431077d57d8128fd";
	size_t		i;
	char		hex[65];
	unsigned char *big;
	size_t		big_len = 1048576;
	sha256_ctx	ctx;
	uint8_t		digest[SHA256_DIGEST_LENGTH];
	size_t		off;
	size_t		chunk;
	bool		same;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
	{
		sha256_hex(vectors[i].input, strlen(vectors[i].input), hex);
		if (!check(strcmp(hex, vectors[i].hex) == 0,
				   "sha256 of a %zu-byte known vector",
				   strlen(vectors[i].input)))
			diag("got %s", hex);
	}

	big = malloc(big_len);
	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
	{
		memset(big, 'a', runs[i].n);
		sha256_hex(big, runs[i].n, hex);
		if (!check(strcmp(hex, runs[i].hex) == 0,
				   "sha256 of %zu times \"a\"", runs[i].n))
			diag("got %s", hex);
	}

	/* 1 MiB of bytes (7 * i + 3) mod 256, as made by a one-line script */
	for (i = 0; i < big_len; i++)
		big[i] = (unsigned char) ((i * 7 + 3) % 256);
	sha256_hex(big, big_len, hex);
	if (!check(strcmp(hex, pattern_hex) == 0, "sha256 of a 1 MiB input"))
		diag("got %s", hex);

	/* the same input fed in uneven chunks, including empty ones */
	sha256_init(&ctx);
	sha256_update(&ctx, NULL, 0);
	for (off = 0, chunk = 0; off < big_len; chunk = (chunk + 1) % 131)
	{
		size_t		take = chunk < big_len - off ? chunk : big_len - off;

		sha256_update(&ctx, big + off, take);
		off += take;
	}
	sha256_final(&ctx, digest);
	same = true;
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
	{
		char		two[3];

		snprintf(two, sizeof(two), "%02x", digest[i]);
		if (memcmp(two, pattern_hex + 2 * i, 2) != 0)
			same = false;
	}
	check(same, "sha256 of the 1 MiB input fed in chunks of 0 to 130 bytes");
	free(big);
}

/* ----------------------------------------------------------------
 *		Names and durations
 * ----------------------------------------------------------------
 */

/*
 * Check manifest_valid_name() on good and bad names.
 */
static void
test_names(void)
{
	static const char *good[] = {
		"a", "0", "fetch", "load_2", "x-y", "9lives", "a_", "a-",
		"abcdefghijklmnopqrstuvwxyz0123456789_-abcdefghijklmnopqrstuvwxy",
	};
	static const char *bad[] = {
		"", "Foo", "_a", "-a", "a b", "a.b", "\xc3\xa9", "a/b", "A",
		"abcdefghijklmnopqrstuvwxyz0123456789_-abcdefghijklmnopqrstuvwxyz",
	};
	size_t		i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		check(manifest_valid_name(good[i]), "valid name \"%s\"", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check(!manifest_valid_name(bad[i]), "invalid name \"%s\"", bad[i]);
	check(strlen(good[8]) == 63 && strlen(bad[9]) == 64,
		  "the long name cases are 63 and 64 bytes");
	check(!manifest_valid_name(NULL), "NULL is not a valid name");
}

/*
 * Check duration parsing, formatting and their round trip.
 */
static void
test_durations(void)
{
	static const struct
	{
		const char *text;
		int64_t		ms;
	}			good[] =
	{
		{"0s", 0}, {"0ms", 0}, {"500ms", 500}, {"30s", 30000},
		{"1m", 60000}, {"1h30m", 5400000}, {"2d", 172800000},
		{"90s", 90000}, {"1d2h3m4s5ms", 93784005}, {"1s500ms", 1500},
		{"007s", 7000}, {"1h1ms", 3600001},
		{"9223372036854775807ms", INT64_MAX},
		{"106751991167d7h12m55s807ms", INT64_MAX},
	};
	static const char *bad[] = {
		"", "5 seconds", "-1s", "1.5h", "1", "s", "1x", "1S", " 1s", "1s ",
		"30m1h", "1h1h", "1ms1s", "1s1s", "1m1d", "+1s", "1hh",
		"9223372036854775808ms", "106751991167d7h12m55s808ms",
		"99999999999999999999s", "106751991168d", "1e3s",
	};
	static const struct
	{
		int64_t		ms;
		const char *text;
	}			formats[] =
	{
		{0, "0s"}, {1, "1ms"}, {999, "999ms"}, {1000, "1s"}, {1500, "1s500ms"},
		{90000, "1m30s"}, {3600000, "1h"}, {5400000, "1h30m"},
		{86400000, "1d"}, {604800000, "7d"}, {93784005, "1d2h3m4s5ms"},
		{86400001, "1d1ms"}, {INT64_MAX, "106751991167d7h12m55s807ms"},
	};
	size_t		i;
	int64_t		ms;
	char		buf[MANIFEST_DURATION_BUFLEN];
	uint64_t	state = 88172645463325252ULL;
	bool		all_ok = true;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		ms = -42;
		if (!check(manifest_parse_duration(good[i].text, &ms) &&
				   ms == good[i].ms,
				   "duration \"%s\" is %lld ms", good[i].text,
				   (long long) good[i].ms))
			diag("got %lld", (long long) ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		ms = -42;
		check(!manifest_parse_duration(bad[i], &ms) && ms == -42,
			  "duration \"%s\" is rejected", bad[i]);
	}
	check(!manifest_parse_duration(NULL, &ms), "NULL duration is rejected");

	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
	{
		int			n = manifest_format_duration(formats[i].ms, buf,
												 sizeof(buf));

		if (!check(n == (int) strlen(formats[i].text) &&
				   strcmp(buf, formats[i].text) == 0,
				   "%lld ms formats as \"%s\"", (long long) formats[i].ms,
				   formats[i].text))
			diag("got %d \"%s\"", n, buf);
	}
	check(manifest_format_duration(-1, buf, sizeof(buf)) == -1 &&
		  buf[0] == '\0', "formatting a negative duration fails");
	check(manifest_format_duration(1500, buf, 7) == -1 && buf[0] == '\0' &&
		  manifest_format_duration(1500, buf, 8) == 7,
		  "formatting into a buffer one byte short fails cleanly");
	check(manifest_format_duration(5, NULL, 0) == -1,
		  "formatting into no buffer fails");

	/* round trip: format then parse gives the same value back */
	for (i = 0; i < 100000; i++)
	{
		int64_t		v;
		int64_t		back = -1;

		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		switch (i % 4)
		{
			case 0:
				v = (int64_t) (state >> 1);
				break;
			case 1:
				v = (int64_t) (state % 1000000000ULL);
				break;
			case 2:
				v = (int64_t) (state % 100000ULL) * 1000;
				break;
			default:
				v = (int64_t) i;
				break;
		}
		if (manifest_format_duration(v, buf, sizeof(buf)) < 0 ||
			!manifest_parse_duration(buf, &back) || back != v)
		{
			if (all_ok)
				diag("round trip failed for %lld (\"%s\" -> %lld)",
					 (long long) v, buf, (long long) back);
			all_ok = false;
		}
	}
	check(all_ok, "100000 durations survive format then parse");
}

/* ----------------------------------------------------------------
 *		Valid manifests and the canonical form
 * ----------------------------------------------------------------
 */

static const char *three_jobs =
"{ 'description': 'nightly load', 'max_parallel': 4, 'fail_fast': true,\n"
"  'timeout': '2h',\n"
"  'jobs': [\n"
"    { 'name': 'report', 'command': 'SELECT report()',\n"
"      'needs': ['load', 'fetch'], 'retries': 2, 'retry_delay': 90 },\n"
"    { 'name': 'fetch', 'kind': 'sql', 'command': 'SELECT fetch()',\n"
"      'timeout': '30s' },\n"
"    { 'name': 'load', 'kind': 'external', 'queue': 'default',\n"
"      'spec': { 'command': ['loader', '--fast'], 'ratio': 0.1 },\n"
"      'needs': ['fetch'], 'timeout': 3600 } ] }";

/*
 * Check that a 3-job manifest parses with every field as written or
 * defaulted, and with the expected topological order.
 */
static void
test_valid_manifest(void)
{
	ManifestError err;
	Manifest   *m = parse_q(three_jobs, &err);
	ManifestJob *j;

	if (!check(m != NULL, "a valid 3-job manifest parses"))
	{
		diag("error: %s", err.message);
		return;
	}
	check(err.kind == MANIFEST_ERR_NONE && err.message[0] == '\0',
		  "no error is reported for a valid manifest");
	check(strcmp(m->description, "nightly load") == 0 &&
		  m->max_parallel == 4 && m->fail_fast &&
		  m->timeout_ms == 7200000 && m->n_jobs == 3,
		  "top-level fields are read");

	j = &m->jobs[0];
	check(strcmp(j->name, "report") == 0 && j->kind == MANIFEST_JOB_SQL &&
		  strcmp(j->command, "SELECT report()") == 0 && j->queue == NULL &&
		  strcmp(j->spec, "{}") == 0 && j->n_needs == 2 &&
		  strcmp(j->needs[0], "load") == 0 &&
		  strcmp(j->needs[1], "fetch") == 0 &&
		  j->needs_index[0] == 2 && j->needs_index[1] == 1 &&
		  j->timeout_ms == -1 && j->retries == 2 &&
		  j->retry_delay_ms == 90000,
		  "job 1 (sql, with needs in given order) is read");

	j = &m->jobs[1];
	check(strcmp(j->name, "fetch") == 0 && j->kind == MANIFEST_JOB_SQL &&
		  j->n_needs == 0 && j->needs == NULL && j->timeout_ms == 30000 &&
		  j->retries == 0 && j->retry_delay_ms == 1000,
		  "job 2 (sql, defaults) is read");

	j = &m->jobs[2];
	check(strcmp(j->name, "load") == 0 && j->kind == MANIFEST_JOB_EXTERNAL &&
		  j->command == NULL && strcmp(j->queue, "default") == 0 &&
		  strcmp(j->spec,
				 "{\"command\":[\"loader\",\"--fast\"],\"ratio\":0.1}") == 0 &&
		  j->n_needs == 1 && j->needs_index[0] == 1 &&
		  j->timeout_ms == 3600000,
		  "job 3 (external, spec canonical) is read");

	check(m->topo_order[0] == 1 && m->topo_order[1] == 2 &&
		  m->topo_order[2] == 0,
		  "topological order is fetch, load, report");
	check(strlen(m->digest) == 64 &&
		  strspn(m->digest, "0123456789abcdef") == 64,
		  "digest is 64 lower-case hex digits");
	check(m->canonical_len == strlen(m->canonical),
		  "canonical_len matches the text");
	manifest_free(m);
}

/*
 * Pin the exact canonical text and digest of one manifest: any change here
 * changes the digest of every stored pack, so it must be deliberate.
 */
static void
test_golden(void)
{
	const char *expect =
		"{\"description\":\"nightly load\",\"fail_fast\":true,\"jobs\":["
		"{\"command\":\"SELECT report()\",\"kind\":\"sql\","
		"\"name\":\"report\",\"needs\":[\"load\",\"fetch\"],\"retries\":2,"
		"\"retry_delay\":\"1m30s\","
		"\"timeout\":null},"
		"{\"command\":\"SELECT fetch()\",\"kind\":\"sql\",\"name\":\"fetch\","
		"\"needs\":[],\"retries\":0,\"retry_delay\":\"1s\","
		"\"timeout\":\"30s\"},"
		"{\"kind\":\"external\",\"name\":\"load\",\"needs\":[\"fetch\"],"
		"\"queue\":\"default\",\"retries\":0,\"retry_delay\":\"1s\","
		"\"spec\":{\"command\":[\"loader\",\"--fast\"],\"ratio\":0.1},"
		"\"timeout\":\"1h\"}],"
		"\"max_parallel\":4,\"timeout\":\"2h\"}";
	const char *expect_digest =
		"ccba0af044de4fa9bfda1b28a52a9bd09fa544395144c891d45811ba14eee2cc";
	ManifestError err;
	Manifest   *m = parse_q(three_jobs, &err);

	if (!check(m != NULL && strcmp(m->canonical, expect) == 0,
			   "canonical text of the 3-job manifest is as pinned"))
	{
		diag("got %s", m ? m->canonical : err.message);
		manifest_free(m);
		return;
	}
	if (!check(strcmp(m->digest, expect_digest) == 0,
			   "digest of the 3-job manifest is as pinned"))
		diag("got %s", m->digest);
	manifest_free(m);
}

/*
 * Check that the canonical text parses to itself, and that (for input
 * without reals) it is what jansson writes with sorted keys, compactly.
 */
static void
test_canonical_properties(void)
{
	static const char *inputs[] = {
		"{'jobs':[{'name':'a','command':'x'}]}",
		("{'jobs':[{'name':'a','kind':'external','queue':'q',"
		 "'spec':{'z':{'b':[1,{'y':2,'x':[]}],'a':{}},'\\u00e9':'\\u00e8',"
		 "'A':'\\t\\n\\u0001\\u007f/\\\\\\'','':null,"
		 "'big':-9223372036854775808}}]}"),
		("{'description':'caf\\u00e9 \\ud83d\\ude00 \\n','jobs':[{'name':'a',"
		 "'command':'SELECT \\'x\\'\\r\\n'}]}"),
	};
	size_t		i;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
	{
		ManifestError err;
		Manifest   *m = parse_q(inputs[i], &err);
		Manifest   *again;
		json_t	   *tree;
		char	   *dumped;

		if (!check(m != NULL, "canonical input %zu parses", i + 1))
		{
			diag("error: %s", err.message);
			continue;
		}
		again = manifest_parse(m->canonical, m->canonical_len, &err);
		check(again != NULL && strcmp(again->canonical, m->canonical) == 0 &&
			  strcmp(again->digest, m->digest) == 0,
			  "canonical text %zu is a fixed point", i + 1);
		manifest_free(again);

		tree = json_loadb(m->canonical, m->canonical_len, 0, NULL);
		dumped = tree ? json_dumps(tree, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
		if (!check(dumped != NULL && strcmp(dumped, m->canonical) == 0,
				   "canonical text %zu matches jansson's sorted compact dump",
				   i + 1))
			diag("ours   %s\n# jansson %s", m->canonical,
				 dumped ? dumped : "(null)");
		manifest_test_free(dumped);	/* jansson allocated it */
		json_decref(tree);
		manifest_free(m);
	}
}

/*
 * Check that key order and white space do not change the digest.
 */
static void
test_same_digest(void)
{
	static const char *variants[] = {
		"{'jobs':[{'name':'a','command':'x','needs':[]},"
		"{'name':'b','kind':'external','queue':'q','spec':{'p':1,'q':[2,3]},"
		"'needs':['a']}],'max_parallel':2}",
		/* keys reordered at every level */
		"{'max_parallel':2,'jobs':[{'needs':[],'command':'x','name':'a'},"
		"{'needs':['a'],'spec':{'q':[2,3],'p':1},'queue':'q','name':'b',"
		"'kind':'external'}]}",
		/* other white space */
		"\n\t{ 'jobs' : [ { 'name' : 'a' ,\r\n 'command' : 'x' , "
		"'needs' : [ ] "
		"} , { 'name':'b', 'kind':'external', 'queue':'q', 'spec':{ 'p' : 1 , "
		"'q' : [ 2 , 3 ] }, 'needs':[ 'a' ] } ] , 'max_parallel' : 2 }  \n",
		/* defaults spelled out */
		"{'description':'','max_parallel':2,'fail_fast':false,'timeout':null,"
		"'jobs':[{'name':'a','kind':'sql','command':'x','needs':[],"
		"'timeout':null,'retries':0,'retry_delay':'1s'},"
		"{'name':'b','kind':'external','queue':'q','spec':{'p':1,'q':[2,3]},"
		"'needs':['a'],'timeout':null,'retries':0,'retry_delay':1}]}",
		/* defaults in other spellings */
		"{'jobs':[{'name':'a','command':'x','retry_delay':'1000ms'},"
		"{'name':'b','kind':'external','queue':'q','spec':{'p':1,'q':[2,3]},"
		"'needs':['a'],'retry_delay':'0d0h0m1s0ms'}],'max_parallel':2}",
	};
	char		base[600];
	char		other[600];
	size_t		i;

	digest_q(variants[0], base, sizeof(base));
	check(strncmp(base, "ERROR", 5) != 0, "base manifest for digest checks "
		  "parses");
	for (i = 1; i < sizeof(variants) / sizeof(variants[0]); i++)
	{
		digest_q(variants[i], other, sizeof(other));
		if (!check(strcmp(base, other) == 0, "same digest for variant %zu "
				   "(%s)", i, i == 1 ? "keys reordered" :
				   i == 2 ? "other white space" :
				   i == 3 ? "defaults spelled out" : "defaults respelled"))
			diag("base %s, variant %s", base, other);
	}

	/* sql job with an empty spec written vs not: spec is not allowed */
	digest_q("{'jobs':[{'name':'a','kind':'external','queue':'q'}]}",
			 base, sizeof(base));
	digest_q("{'jobs':[{'name':'a','kind':'external','queue':'q','spec':{}}]}",
			 other, sizeof(other));
	check(strcmp(base, other) == 0 && strncmp(base, "ERROR", 5) != 0,
		  "same digest for an omitted and an empty spec");

	/* durations: "90s", "1m30s" and 90 mean the same */
	digest_q("{'timeout':'90s','jobs':[{'name':'a','command':'x'}]}",
			 base, sizeof(base));
	digest_q("{'timeout':'1m30s','jobs':[{'name':'a','command':'x'}]}",
			 other, sizeof(other));
	check(strcmp(base, other) == 0, "same digest for \"90s\" and \"1m30s\"");
	digest_q("{'timeout':90,'jobs':[{'name':'a','command':'x'}]}",
			 other, sizeof(other));
	check(strcmp(base, other) == 0, "same digest for \"90s\" and 90");

	/* the same string written with and without escapes */
	digest_q("{'description':'\\u00e9\\/',"
			 "'jobs':[{'name':'a','command':'x'}]}",
			 base, sizeof(base));
	digest_q("{'description':'\xc3\xa9/','jobs':[{'name':'a','command':'x'}]}",
			 other, sizeof(other));
	check(strcmp(base, other) == 0, "same digest for escaped and raw text");
}

/*
 * Check that changing any single value changes the digest, and that all
 * the changed manifests differ from each other.
 */
static void
test_changed_digest(void)
{
#define BASE_TOP(desc, par, ff, to) \
	"{'description':'" desc "','max_parallel':" par ",'fail_fast':" ff \
	",'timeout':" to ",'jobs':["
#define BASE_A(name, cmd, retries, delay, to) \
	"{'name':'" name "','command':'" cmd "','retries':" retries \
	",'retry_delay':'" delay "','timeout':" to "},"
#define BASE_B(needs, queue, spec) \
	"{'name':'b','kind':'external','queue':'" queue "','spec':" spec \
	",'needs':" needs "},"
#define BASE_C \
	"{'name':'c','command':'y','needs':['a','b']}]}"
	static const struct
	{
		const char *what;
		const char *text;
	}			cases[] =
	{
		{"base",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"description",
			BASE_TOP("e", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"max_parallel",
			BASE_TOP("d", "3", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"fail_fast",
			BASE_TOP("d", "2", "true", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"pack timeout",
			BASE_TOP("d", "2", "false", "'1h1ms'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"pack timeout to null",
			BASE_TOP("d", "2", "false", "null")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"job name",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}")
			"{'name':'c2','command':'y','needs':['a','b']}]}"},
		{"command",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x ", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"needs removed",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("[]", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"needs order",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}")
			"{'name':'c','command':'y','needs':['b','a']}]}"},
		{"retries",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "0", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"retry_delay",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5001ms", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"job timeout",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'31s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"spec integer",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':2,'f':0.5,'s':'v'}") BASE_C},
		{"spec integer to real",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1.0,'f':0.5,'s':'v'}") BASE_C},
		{"spec real",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5000000000000001,'s':'v'}")
			BASE_C},
		{"spec string",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'V'}") BASE_C},
		{"spec key",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'t':'v'}") BASE_C},
		{"queue",
			BASE_TOP("d", "2", "false", "'1h'")
			BASE_A("a", "x", "1", "5s", "'30s'")
			BASE_B("['a']", "q2", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
		{"kind (sql job a becomes external)",
			BASE_TOP("d", "2", "false", "'1h'")
			"{'name':'a','kind':'external','queue':'q','retries':1,"
			"'retry_delay':'5s','timeout':'30s'},"
			BASE_B("['a']", "q", "{'n':1,'f':0.5,'s':'v'}") BASE_C},
	};
	enum
	{
		N_CASES = sizeof(cases) / sizeof(cases[0])
	};
	char		digests[N_CASES][600];
	size_t		i;
	size_t		k;

	for (i = 0; i < N_CASES; i++)
	{
		digest_q(cases[i].text, digests[i], sizeof(digests[i]));
		if (!check(strncmp(digests[i], "ERROR", 5) != 0,
				   "changed manifest (%s) parses", cases[i].what))
			diag("%s", digests[i]);
	}
	for (i = 1; i < N_CASES; i++)
		check(strcmp(digests[i], digests[0]) != 0,
			  "changing %s changes the digest", cases[i].what);
	for (i = 0; i < N_CASES; i++)
	{
		for (k = i + 1; k < N_CASES; k++)
		{
			if (strcmp(digests[i], digests[k]) == 0)
				break;
		}
		if (k < N_CASES)
			break;
	}
	check(i == N_CASES, "all %d changed manifests have distinct digests",
		  (int) N_CASES);
#undef BASE_TOP
#undef BASE_A
#undef BASE_B
#undef BASE_C
}

/*
 * Check how numbers inside spec are written.
 */
static void
test_spec_numbers(void)
{
	static const struct
	{
		const char *in;
		const char *out;
	}			cases[] =
	{
		{"0.1", "0.1"},
		{"0.10000000000000001", "0.1"},
		{"1e-1", "0.1"},
		{"0.30000000000000004", "0.30000000000000004"},
		{"1.0", "1.0"},
		{"1.5E2", "150.0"},
		{"-0.0", "-0.0"},
		{"1e300", "1e+300"},
		{"123456789.123", "123456789.123"},
		{"2.2250738585072014e-308", "2.2250738585072014e-308"},
		{"5e-324", "4.94065645841247e-324"},
		{"0.1e1", "1.0"},
		{"100", "100"},
		{"-5", "-5"},
		{"0", "0"},
		{"-0", "0"},
		{"9223372036854775807", "9223372036854775807"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"1.7976931348623157e308", "1.7976931348623157e+308"},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		text[256];
		char		expect[256];
		ManifestError err;
		Manifest   *m;

		snprintf(text, sizeof(text),
				 "{\"jobs\":[{\"name\":\"a\",\"kind\":\"external\","
				 "\"queue\":\"q\",\"spec\":{\"v\":%s}}]}", cases[i].in);
		snprintf(expect, sizeof(expect), "{\"v\":%s}", cases[i].out);
		m = manifest_parse(text, strlen(text), &err);
		if (!check(m != NULL && strcmp(m->jobs[0].spec, expect) == 0,
				   "spec number %s is written as %s", cases[i].in,
				   cases[i].out))
			diag("got %s", m ? m->jobs[0].spec : err.message);
		manifest_free(m);
	}
}

/*
 * Check that the topological order breaks ties by manifest order.
 */
static void
test_topo_order(void)
{
	ManifestError err;
	Manifest   *m;
	int			i;
	bool		ok;

	m = parse_q("{'jobs':[{'name':'d','command':'x'},"
				"{'name':'c','command':'x'},"
				"{'name':'b','command':'x'},{'name':'a','command':'x'}]}",
				&err);
	ok = m != NULL;
	for (i = 0; ok && i < 4; i++)
		ok = m->topo_order[i] == i;
	check(ok, "independent jobs keep manifest order");
	manifest_free(m);

	/* c and a are ready first; c frees b, which must wait for a's turn */
	m = parse_q("{'jobs':[{'name':'e','command':'x','needs':['a']},"
				"{'name':'b','command':'x','needs':['c']},"
				"{'name':'c','command':'x'},"
				"{'name':'a','command':'x'},"
				"{'name':'z','command':'x','needs':['e','b']}]}", &err);
	check(m != NULL && m->topo_order[0] == 2 && m->topo_order[1] == 1 &&
		  m->topo_order[2] == 3 && m->topo_order[3] == 0 &&
		  m->topo_order[4] == 4,
		  "ready jobs are taken lowest manifest index first");
	manifest_free(m);
}

/* ----------------------------------------------------------------
 *		Errors
 * ----------------------------------------------------------------
 */

/*
 * Check every kind of error: its kind, exact message, position and the
 * style rules for message and detail.
 */
static void
test_errors(void)
{
	static const struct
	{
		const char *text;		/* single-quoted JSON */
		ManifestErrorKind kind;
		const char *message;
		int			line;
		int			column;
		const char *detail;		/* prefix of the detail, or NULL */
	}			cases[] =
	{
		/* syntax */
		{"{'jobs': [\n  {'name': 'a',\n   'command' 'x'}]}",
			MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 3, column 16: ':' expected near "
			"'\"x\"'", 3, 16, NULL},
		{"", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 1: unexpected token "
			"near end of file", 1, 1, NULL},
		{"{'jobs':[]} x", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 13: end of file "
			"expected near 'x'", 1, 13, NULL},
		{"{'jobs':[1,]}", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 12: unexpected token "
			"near ']'", 1, 12, NULL},
		{"{'a':1,\n 'a':2}", MANIFEST_ERR_SYNTAX,
			"duplicate key \"a\" in manifest", 2, 4,
			"A key may appear only once in each JSON object; the repeated "
			"key ends at line 2, column 4."},
		{"{'jobs':[{'name':'a','command':'x','name':'b'}]}",
			MANIFEST_ERR_SYNTAX, "duplicate key \"name\" in manifest", 1, 41,
			NULL},
		{"{'jobs':[{'name':'a','kind':'external','queue':'q','spec':"
			"{'k\\'\\\\':1,'k\\u0022\\u005c':2}}]}", MANIFEST_ERR_SYNTAX,
			"duplicate key \"k\\\"\\\\\" in manifest", 1, 84, NULL},
		{"{'description':'\xff'}", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 16: unable to decode "
			"byte 0xff near '\"'", 1, 16, "A manifest must be valid UTF-8."},
		{"{'description':'\xc3\x28'}", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 16: unable to decode "
			"byte 0xc3 near '\"'", 1, 16, NULL},
		{"{'description':'\\u0000'}", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 23: \\u0000 is not "
			"allowed without JSON_ALLOW_NUL near '\"\\u0000\"'", 1, 23, NULL},
		{"{'x':1e999}", MANIFEST_ERR_SYNTAX,
			"invalid manifest JSON at line 1, column 10: real number "
			"overflow near '1e999'", 1, 10, NULL},

		/* top level */
		{"[]", MANIFEST_ERR_INVALID, "manifest must be a JSON object", 0, 0,
			"The manifest text is a JSON array."},
		{"'jobs'", MANIFEST_ERR_INVALID, "manifest must be a JSON object",
			0, 0, "The manifest text is a JSON string."},
		{"{}", MANIFEST_ERR_INVALID, "manifest has no jobs", 0, 0, NULL},
		{"{'jobs':[]}", MANIFEST_ERR_INVALID, "manifest has no jobs", 0, 0,
			NULL},
		{"{'jobs':{}}", MANIFEST_ERR_INVALID,
			"invalid value for \"jobs\" in manifest: must be an array of job "
			"objects", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x'}],'foo':1}",
			MANIFEST_ERR_INVALID, "unknown key \"foo\" in manifest", 0, 0,
			"The keys allowed at the top level are"},
		{"{'description':1,'jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"description\" in "
			"manifest: must be a string", 0, 0, NULL},
		{"{'max_parallel':0,'jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"max_parallel\" in "
			"manifest: must be an integer from 1 to 1000", 0, 0, NULL},
		{"{'max_parallel':1001,'jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"max_parallel\" in "
			"manifest: must be an integer from 1 to 1000", 0, 0, NULL},
		{"{'max_parallel':'2','jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"max_parallel\" in "
			"manifest: must be an integer from 1 to 1000", 0, 0, NULL},
		{"{'fail_fast':1,'jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"fail_fast\" in "
			"manifest: must be true or false", 0, 0, NULL},
		{"{'fail_fast':'true','jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"fail_fast\" in "
			"manifest: must be true or false", 0, 0, NULL},
		{"{'timeout':'0s','jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"0s\" for key "
			"\"timeout\" in manifest", 0, 0,
			"A timeout must be greater than 0 and at most 7d."},
		{"{'timeout':'7d1ms','jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"7d1ms\" for key "
			"\"timeout\" in manifest", 0, 0, NULL},
		{"{'timeout':true,'jobs':[{'name':'a','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"timeout\" in "
			"manifest: must be a duration string, an integer number of "
			"seconds or null", 0, 0, NULL},

		/* jobs: shape and keys */
		{"{'jobs':[{'name':'a','command':'x'},7]}", MANIFEST_ERR_INVALID,
			"job #2 must be a JSON object", 0, 0, NULL},
		{"{'jobs':[{'name':'fetch','command':'x','foo':1}]}",
			MANIFEST_ERR_INVALID, "unknown key \"foo\" in job \"fetch\"", 0, 0,
			"The keys allowed in a job are command, kind, name, needs, "
			"queue, retries, retry_delay, spec and timeout."},
		{"{'jobs':[{'name':'a','command':'x'},{'command':'x','foo':1}]}",
			MANIFEST_ERR_INVALID, "unknown key \"foo\" in job #2", 0, 0, NULL},
		{"{'jobs':[{'command':'x'}]}", MANIFEST_ERR_INVALID,
			"job #1 has no \"name\"", 0, 0, NULL},
		{"{'jobs':[{'name':5,'command':'x'}]}", MANIFEST_ERR_INVALID,
			"invalid value for \"name\" in job #1: must be a string", 0, 0,
			NULL},
		{"{'jobs':[{'name':'Foo','command':'x'}]}", MANIFEST_ERR_INVALID,
			"invalid job name \"Foo\"", 0, 0,
			"Names are 1 to 63 characters: lower-case letters, digits, \"_\" "
			"and \"-\", starting with a letter or digit."},
		{"{'jobs':[{'name':'','command':'x'}]}", MANIFEST_ERR_INVALID,
			"invalid job name \"\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x'},{'name':'b','command':'x'},"
			"{'name':'a','command':'y'}]}", MANIFEST_ERR_INVALID,
			"duplicate job name \"a\"", 0, 0,
			"Jobs #1 and #3 have the same name."},

		/* kind, command, queue, spec */
		{"{'jobs':[{'name':'a','kind':'shell','command':'x'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"kind\" in job \"a\": "
			"must be \"sql\" or \"external\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a'}]}", MANIFEST_ERR_INVALID,
			"job \"a\" of kind \"sql\" has no \"command\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':''}]}", MANIFEST_ERR_INVALID,
			"job \"a\" has an empty \"command\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':' \\n\\t'}]}", MANIFEST_ERR_INVALID,
			"job \"a\" has an empty \"command\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':['x']}]}", MANIFEST_ERR_INVALID,
			"invalid value for \"command\" in job \"a\": must be a string",
			0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','queue':'q'}]}",
			MANIFEST_ERR_INVALID, "key \"queue\" is not allowed in job \"a\" "
			"of kind \"sql\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','spec':{}}]}",
			MANIFEST_ERR_INVALID, "key \"spec\" is not allowed in job \"a\" "
			"of kind \"sql\"", 0, 0, NULL},
		{"{'jobs':[{'name':'b','kind':'external'}]}", MANIFEST_ERR_INVALID,
			"job \"b\" of kind \"external\" has no \"queue\"", 0, 0, NULL},
		{"{'jobs':[{'name':'b','kind':'external','queue':'q','command':'x'}]}",
			MANIFEST_ERR_INVALID, "key \"command\" is not allowed in job "
			"\"b\" of kind \"external\"", 0, 0, NULL},
		{"{'jobs':[{'name':'b','kind':'external','queue':'Default'}]}",
			MANIFEST_ERR_INVALID, "invalid queue name \"Default\" in job "
			"\"b\"", 0, 0, "Names are 1 to 63 characters"},
		{"{'jobs':[{'name':'b','kind':'external','queue':1}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"queue\" in job \"b\": "
			"must be a string", 0, 0, NULL},
		{"{'jobs':[{'name':'b','kind':'external','queue':'q','spec':[]}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"spec\" in job \"b\": "
			"must be a JSON object", 0, 0, NULL},

		/* needs */
		{"{'jobs':[{'name':'a','command':'x','needs':'b'}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"needs\" in job \"a\": "
			"must be an array of job names", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','needs':[1]}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"needs\" in job \"a\": "
			"must be an array of job names", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','needs':['zz']}]}",
			MANIFEST_ERR_INVALID, "job \"a\" needs unknown job \"zz\"", 0, 0,
			NULL},
		{"{'jobs':[{'name':'a','command':'x','needs':['A']}]}",
			MANIFEST_ERR_INVALID, "job \"a\" needs unknown job \"A\"", 0, 0,
			NULL},
		{"{'jobs':[{'name':'a','command':'x','needs':['a']}]}",
			MANIFEST_ERR_INVALID, "job \"a\" needs itself", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x'},"
			"{'name':'b','command':'x','needs':['a','a']}]}",
			MANIFEST_ERR_INVALID, "job \"b\" lists \"a\" more than once in "
			"\"needs\"", 0, 0, NULL},

		/* durations and integers in jobs */
		{"{'jobs':[{'name':'a','command':'x','timeout':'5 seconds'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"5 seconds\" for key "
			"\"timeout\" in job \"a\"", 0, 0, "A duration is one or more"},
		{"{'jobs':[{'name':'a','command':'x','timeout':'-1s'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"-1s\" for key "
			"\"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':'1.5h'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"1.5h\" for key "
			"\"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':''}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"\" for key "
			"\"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x',"
			"'timeout':'99999999999999999999s'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"99999999999999999999s\" "
			"for key \"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':-1}]}",
			MANIFEST_ERR_INVALID, "invalid duration -1 for key \"timeout\" in "
			"job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':0}]}",
			MANIFEST_ERR_INVALID, "invalid duration 0 for key \"timeout\" in "
			"job \"a\"", 0, 0, "A timeout must be greater than 0"},
		{"{'jobs':[{'name':'a','command':'x','timeout':9223372036854775807}]}",
			MANIFEST_ERR_INVALID, "invalid duration 9223372036854775807 for "
			"key \"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':'8d'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"8d\" for key "
			"\"timeout\" in job \"a\"", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','timeout':1.5}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"timeout\" in job \"a\": "
			"must be a duration string, an integer number of seconds or null",
			0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retry_delay':'1d1s'}]}",
			MANIFEST_ERR_INVALID, "invalid duration \"1d1s\" for key "
			"\"retry_delay\" in job \"a\"", 0, 0,
			"A retry delay must be at most 1d."},
		{"{'jobs':[{'name':'a','command':'x','retry_delay':null}]}",
			MANIFEST_ERR_INVALID, "invalid value for \"retry_delay\" in job "
			"\"a\": must be a duration string or an integer number of "
			"seconds", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retries':1.0}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"retries\" in job \"a\": "
			"must be an integer from 0 to 100", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retries':'1'}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"retries\" in job \"a\": "
			"must be an integer from 0 to 100", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retries':101}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"retries\" in job \"a\": "
			"must be an integer from 0 to 100", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retries':-1}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"retries\" in job \"a\": "
			"must be an integer from 0 to 100", 0, 0, NULL},
		{"{'jobs':[{'name':'a','command':'x','retries':true}]}",
			MANIFEST_ERR_INVALID,
			"invalid value for \"retries\" in job \"a\": "
			"must be an integer from 0 to 100", 0, 0, NULL},

		/* cycles */
		{"{'jobs':[{'name':'a','command':'x','needs':['b']},"
			"{'name':'b','command':'x','needs':['a']}]}",
			MANIFEST_ERR_INVALID, "dependency cycle: a -> b -> a", 0, 0,
			"Each job in the cycle needs the next one."},
		{"{'jobs':[{'name':'a','command':'x','needs':['b']},"
			"{'name':'b','command':'x','needs':['c']},"
			"{'name':'c','command':'x','needs':['a']}]}",
			MANIFEST_ERR_INVALID, "dependency cycle: a -> b -> c -> a", 0, 0,
			NULL},
		/* the walk enters the cycle from the side and names it from b */
		{"{'jobs':[{'name':'a','command':'x','needs':['c']},"
			"{'name':'d','command':'x'},"
			"{'name':'b','command':'x','needs':['d','e']},"
			"{'name':'c','command':'x','needs':['e']},"
			"{'name':'e','command':'x','needs':['c','b']}]}",
			MANIFEST_ERR_INVALID, "dependency cycle: c -> e -> c", 0, 0,
			NULL},
		{"{'jobs':[{'name':'ok','command':'x'},"
			"{'name':'x','command':'x','needs':['ok','z']},"
			"{'name':'y','command':'x','needs':['x']},"
			"{'name':'z','command':'x','needs':['y']}]}",
			MANIFEST_ERR_INVALID, "dependency cycle: x -> z -> y -> x", 0, 0,
			NULL},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		ManifestError err;
		Manifest   *m;
		bool		style;

		memset(&err, 0x7f, sizeof(err));
		m = parse_q(cases[i].text, &err);
		if (!check(m == NULL && err.kind == cases[i].kind &&
				   strcmp(err.message, cases[i].message) == 0 &&
				   err.line == cases[i].line &&
				   err.column == cases[i].column &&
				   (cases[i].detail == NULL ||
					strncmp(err.detail, cases[i].detail,
							strlen(cases[i].detail)) == 0),
				   "error: %s", cases[i].message))
			diag("got kind %d at %d:%d: %s / %s", err.kind, err.line,
				 err.column, err.message, err.detail);
		manifest_free(m);

		/* message style: lower case start, no final period, ASCII */
		style = err.message[0] != '\0' &&
			!(err.message[0] >= 'A' && err.message[0] <= 'Z') &&
			err.message[strlen(err.message) - 1] != '.' &&
			is_printable_ascii(err.message) &&
			is_printable_ascii(err.detail) &&
			(err.detail[0] == '\0' ||
			 (err.detail[strlen(err.detail) - 1] == '.' &&
			  !(err.detail[0] >= 'a' && err.detail[0] <= 'z')));
		if (!check(style, "message style for: %s", cases[i].message))
			diag("message \"%s\", detail \"%s\"", err.message, err.detail);
	}
}

/*
 * Check odd inputs to the error machinery: no error struct, NULL text,
 * long and non-ASCII values in messages.
 */
static void
test_error_edges(void)
{
	ManifestError err;
	Manifest   *m;
	Str			s = {NULL, 0, 0};
	int			i;

	check(manifest_parse("{", 1, NULL) == NULL,
		  "a NULL error pointer is allowed");
	manifest_free(NULL);
	check(true, "manifest_free(NULL) is a no-op");

	m = manifest_parse(NULL, 0, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_SYNTAX,
		  "NULL text is a syntax error");

	/* text need not be NUL-terminated: only len bytes are read */
	{
		const char *t =
		"{\"jobs\":[{\"name\":\"a\",\"command\":\"x\"}]}garbage";

		m = manifest_parse(t, strlen(t) - 7, &err);
		check(m != NULL, "only len bytes of the text are parsed");
		manifest_free(m);
	}

	/* a very long unknown key is shortened in the message */
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"command\":\"x\"}],\"");
	for (i = 0; i < 5000; i++)
		str_add(&s, "k");
	str_add(&s, "\":1}");
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_INVALID &&
		  strncmp(err.message, "unknown key \"kkkk", 17) == 0 &&
		  strstr(err.message, "...\" in manifest") != NULL &&
		  strlen(err.message) < 120,
		  "a 5000-byte unknown key is shortened in the message");
	free(s.data);

	/* non-ASCII and control characters are escaped in messages */
	m = parse_q("{'jobs':[{'name':'\xc3\xa9t\xc3\xa9\\u0001\\ud83d\\ude00',"
				"'command':'x'}]}", &err);
	if (!check(m == NULL &&
			   strcmp(err.message, "invalid job name "
					  "\"\\u00E9t\\u00E9\\u0001\\uD83D\\uDE00\"") == 0,
			   "non-ASCII characters in messages are escaped"))
		diag("got %s", err.message);

	/* a multi-line manifest reports the right line */
	m = parse_q("{\n'jobs': [\n{'name': 'a',\n'command': 'x'\n}\n],\n'x': 1,\n"
				"'x': 2\n}", &err);
	check(m == NULL && err.kind == MANIFEST_ERR_SYNTAX && err.line == 8 &&
		  err.column == 3 &&
		  strcmp(err.message, "duplicate key \"x\" in manifest") == 0,
		  "duplicate key position is the repeated key (line 8, column 3)");

	/* description limit */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"description\":\"");
	for (i = 0; i < MANIFEST_MAX_DESCRIPTION; i++)
		str_add(&s, "d");
	str_add(&s, "\",\"jobs\":[{\"name\":\"a\",\"command\":\"x\"}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m != NULL && strlen(m->description) == MANIFEST_MAX_DESCRIPTION,
		  "a 4096-byte description is accepted");
	manifest_free(m);
	s.len = 0;
	str_add(&s, "{\"description\":\"\xc3\xa9");
	for (i = 0; i < MANIFEST_MAX_DESCRIPTION - 1; i++)
		str_add(&s, "d");
	str_add(&s, "\",\"jobs\":[{\"name\":\"a\",\"command\":\"x\"}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_INVALID &&
		  strcmp(err.message,
				 "\"description\" in manifest is too long") == 0 &&
		  strcmp(err.detail, "A description is at most 4096 bytes; this one "
				 "is 4097 bytes.") == 0,
		  "a 4097-byte description is rejected, counting bytes");
	free(s.data);
}

/* ----------------------------------------------------------------
 *		Size, scale and hostile input
 * ----------------------------------------------------------------
 */

/*
 * Build a manifest of n sql jobs named job-0000 and so on, whose needs
 * follow one of the patterns listed in the switch below.
 */
static char *
build_jobs(int n, int mode, size_t *len)
{
	Str			s = {NULL, 0, 0};
	int			i;
	int			k;

	str_add(&s, "{\"max_parallel\":8,\"jobs\":[");
	for (i = 0; i < n; i++)
	{
		str_add(&s, "%s{\"name\":\"job-%04d\",\"command\":\"SELECT %d\","
				"\"needs\":[", i > 0 ? "," : "", i, i);
		switch (mode)
		{
			case 0:				/* chain: each needs the one before */
				if (i > 0)
					str_add(&s, "\"job-%04d\"", i - 1);
				break;
			case 1:				/* fan-in: the last needs all others */
				for (k = 0; i == n - 1 && k < n - 1; k++)
					str_add(&s, "%s\"job-%04d\"", k > 0 ? "," : "", k);
				break;
			case 2:				/* reversed chain: each needs the next */
				if (i < n - 1)
					str_add(&s, "\"job-%04d\"", i + 1);
				break;
			case 3:				/* dense: each needs up to 80 before it */
				for (k = i - 1; k >= 0 && k >= i - 80; k--)
					str_add(&s, "%s\"job-%04d\"", k < i - 1 ? "," : "", k);
				break;
			case 4:				/* chain closed into one big cycle */
				str_add(&s, "\"job-%04d\"", i > 0 ? i - 1 : n - 1);
				break;
			default:
				break;
		}
		str_add(&s, "]}");
	}
	str_add(&s, "]}");
	*len = s.len;
	return s.data;
}

/*
 * Check that large dependency graphs parse quickly and correctly, and that
 * more than 1000 jobs are refused.
 */
static void
test_scale(void)
{
	static const char *modes[] = {
		"1000-job needs chain", "1000-job fan-in", "1000-job reversed chain",
		"1000 jobs each needing the 80 before"
	};
	int			mode;
	size_t		len;
	char	   *text;
	ManifestError err;
	Manifest   *m;
	double		t0;
	double		elapsed;

	for (mode = 0; mode < 4; mode++)
	{
		bool		order_ok = true;
		int			i;

		text = build_jobs(1000, mode, &len);
		t0 = now_ms();
		m = manifest_parse(text, len, &err);
		elapsed = now_ms() - t0;
		if (!check(m != NULL && m->n_jobs == 1000, "%s parses (%zu bytes)",
				   modes[mode], len))
			diag("error: %s", err.message);
		check(elapsed < time_limit_ms(500), "%s parses in %.1f ms",
			  modes[mode], elapsed);
		for (i = 0; m != NULL && i < 1000; i++)
		{
			int			want = mode == 2 ? 999 - i : i;

			if (m->topo_order[i] != want)
				order_ok = false;
		}
		check(m != NULL && order_ok, "%s has the expected topological order",
			  modes[mode]);
		manifest_free(m);
		free(text);
	}

	/* a 1000-job cycle is reported, with a shortened list */
	text = build_jobs(1000, 4, &len);
	t0 = now_ms();
	m = manifest_parse(text, len, &err);
	elapsed = now_ms() - t0;
	if (!check(m == NULL && err.kind == MANIFEST_ERR_INVALID &&
			   strncmp(err.message, "dependency cycle: job-0000 -> job-0999 "
					   "-> job-0998 -> ", 54) == 0 &&
			   strstr(err.message, " -> ... -> job-0000") != NULL &&
			   strcmp(err.detail, "Each job in the cycle needs the next one; "
					  "the cycle has 1000 jobs.") == 0,
			   "a 1000-job cycle is named, shortened"))
		diag("got %s / %s", err.message, err.detail);
	check(elapsed < time_limit_ms(500), "the 1000-job cycle is found in "
		  "%.1f ms", elapsed);
	free(text);

	text = build_jobs(1001, 0, &len);
	m = manifest_parse(text, len, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_INVALID &&
		  strcmp(err.message, "manifest has too many jobs") == 0 &&
		  strcmp(err.detail, "A manifest has at most 1000 jobs; this one "
				 "has 1001.") == 0,
		  "1001 jobs are rejected");
	free(text);
}

/*
 * Check input that is hostile in size or shape: deep nesting, the size
 * limit, huge arrays and strings.
 */
static void
test_hostile(void)
{
	Str			s = {NULL, 0, 0};
	ManifestError err;
	Manifest   *m;
	int			i;
	char	   *big;
	double		t0;

	/* 10000 nested arrays in spec: jansson stops at its depth limit */
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"kind\":\"external\","
			"\"queue\":\"q\",\"spec\":{\"x\":");
	for (i = 0; i < 10000; i++)
		str_add(&s, "[");
	for (i = 0; i < 10000; i++)
		str_add(&s, "]");
	str_add(&s, "}}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_SYNTAX &&
		  strstr(err.message, "maximum parsing depth reached") != NULL &&
		  strcmp(err.detail, "Arrays and objects may be nested at most 2048 "
				 "levels deep.") == 0,
		  "10000 nested arrays are rejected without a crash");
	free(s.data);

	/* 10000 nested objects at the top level: the same, no crash */
	s.data = NULL;
	s.len = s.cap = 0;
	for (i = 0; i < 10000; i++)
		str_add(&s, "{\"k\":");
	str_add(&s, "1");
	for (i = 0; i < 10000; i++)
		str_add(&s, "}");
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_SYNTAX &&
		  strstr(err.message, "maximum parsing depth reached") != NULL,
		  "10000 nested objects are rejected without a crash");
	free(s.data);

	/* 2000 nested arrays and objects are fine and written back exactly */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"kind\":\"external\","
			"\"queue\":\"q\",\"spec\":{\"x\":");
	for (i = 0; i < 1000; i++)
		str_add(&s, "[{\"k\":");
	str_add(&s, "0");
	for (i = 0; i < 1000; i++)
		str_add(&s, "}]");
	str_add(&s, "}}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m != NULL && strlen(m->jobs[0].spec) == 5 + 1000 * 8 + 1 + 1 &&
		  strncmp(m->jobs[0].spec, "{\"x\":[{\"k\":[{\"k\":", 17) == 0,
		  "2000 levels of nesting in spec are written back");
	manifest_free(m);
	free(s.data);

	/* exactly MANIFEST_MAX_BYTES is allowed, one more is not */
	big = malloc(MANIFEST_MAX_BYTES + 2);
	memset(big, ' ', MANIFEST_MAX_BYTES + 2);
	memcpy(big, "{\"jobs\":[{\"name\":\"a\",\"command\":\"x\"}]}", 37);
	m = manifest_parse(big, MANIFEST_MAX_BYTES, &err);
	check(m != NULL, "a manifest of exactly 1048576 bytes is accepted");
	manifest_free(m);
	m = manifest_parse(big, MANIFEST_MAX_BYTES + 1, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_TOO_LARGE &&
		  strcmp(err.message, "manifest is too large") == 0 &&
		  strcmp(err.detail, "A manifest is at most 1048576 bytes; this one "
				 "is 1048577 bytes.") == 0 &&
		  err.line == 0 && err.column == 0,
		  "a manifest of 1048577 bytes is rejected as too large");
	t0 = now_ms();
	m = manifest_parse(big, SIZE_MAX, &err);
	check(m == NULL && err.kind == MANIFEST_ERR_TOO_LARGE &&
		  now_ms() - t0 < 10, "a huge length is rejected before parsing");
	free(big);

	/* a huge needs array is refused before it is looked at */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"command\":\"x\"},"
			"{\"name\":\"b\","
			"\"command\":\"x\",\"needs\":[");
	for (i = 0; i < 150000; i++)
		str_add(&s, "%s\"a\"", i > 0 ? "," : "");
	str_add(&s, "]}]}");
	t0 = now_ms();
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && strcmp(err.message, "too many entries in \"needs\" in "
							  "job \"b\"") == 0 &&
		  strcmp(err.detail, "A job can need at most 999 other jobs; this "
				 "one lists 150000.") == 0,
		  "a 150000-entry needs array is rejected");
	check(now_ms() - t0 < time_limit_ms(500),
		  "the 150000-entry needs array is rejected quickly");
	free(s.data);

	/* 999 needs that are all the same name: duplicate found at once */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"command\":\"x\"},"
			"{\"name\":\"b\","
			"\"command\":\"x\",\"needs\":[");
	for (i = 0; i < 999; i++)
		str_add(&s, "%s\"a\"", i > 0 ? "," : "");
	str_add(&s, "]}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m == NULL && strcmp(err.message, "job \"b\" lists \"a\" more than "
							  "once in \"needs\"") == 0,
		  "999 copies of one need are rejected as a duplicate");
	free(s.data);

	/* a long command and a spec with a long array of reals */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"jobs\":[{\"name\":\"a\",\"command\":\"");
	for (i = 0; i < 90000; i++)
		str_add(&s, "SELECT 1;");
	str_add(&s, "\"},{\"name\":\"b\",\"kind\":\"external\",\"queue\":\"q\","
			"\"spec\":{\"v\":[");
	for (i = 0; i < 20000; i++)
		str_add(&s, "%s%d.5", i > 0 ? "," : "", i);
	str_add(&s, "]}}]}");
	t0 = now_ms();
	m = manifest_parse(s.data, s.len, &err);
	check(m != NULL && strlen(m->jobs[0].command) == 810000 &&
		  now_ms() - t0 < time_limit_ms(1000),
		  "an 810000-byte command and a 20000-element spec array parse "
		  "(%zu bytes)", s.len);
	manifest_free(m);
	free(s.data);

	/* a spec object with many keys in reverse order is sorted */
	s.data = NULL;
	s.len = s.cap = 0;
	str_add(&s, "{\"jobs\":[{\"name\":\"b\",\"kind\":\"external\","
			"\"queue\":\"q\",\"spec\":{");
	for (i = 49999; i >= 0; i--)
		str_add(&s, "\"k%05d\":%d%s", i, i, i > 0 ? "," : "");
	str_add(&s, "}}]}");
	m = manifest_parse(s.data, s.len, &err);
	check(m != NULL &&
		  strncmp(m->jobs[0].spec, "{\"k00000\":0,\"k00001\":1,", 23) == 0,
		  "a spec object with 50000 keys is written sorted");
	manifest_free(m);
	free(s.data);
}

/* ----------------------------------------------------------------
 *		Allocation failures
 * ----------------------------------------------------------------
 */

/*
 * Make each allocation in turn fail while parsing text and check that the
 * result is an out-of-memory error or the normal result, and that nothing
 * stays allocated either way.
 */
static void
test_alloc_failures(const char *what, const char *tmpl)
{
	char	   *text = jq(tmpl);
	size_t		len = strlen(text);
	ManifestError base_err;
	ManifestError err;
	Manifest   *base;
	Manifest   *m;
	long		k;
	long		calls;
	long		nomem = 0;
	bool		results_ok = true;
	bool		leaks_ok = true;

	alloc_calls = 0;
	alloc_fail_at = 0;
	base = manifest_parse(text, len, &base_err);
	calls = alloc_calls;

	for (k = 1; k <= calls + 1; k++)
	{
		long		live_before = alloc_live;

		alloc_calls = 0;
		alloc_fail_at = k;
		alloc_failed = false;
		m = manifest_parse(text, len, &err);
		alloc_fail_at = 0;

		if (m == NULL && err.kind == MANIFEST_ERR_NOMEM)
		{
			nomem++;
			if (!alloc_failed || strcmp(err.message, "out of memory") != 0)
				results_ok = false;
		}
		else if (base != NULL)
		{
			if (m == NULL || strcmp(m->canonical, base->canonical) != 0)
				results_ok = false;
		}
		else if (m != NULL || err.kind != base_err.kind ||
				 strcmp(err.message, base_err.message) != 0)
			results_ok = false;
		if (!results_ok && k > 0)
		{
			diag("allocation %ld: %s", k, m ? "parsed" : err.message);
			k = calls + 1;
		}
		manifest_free(m);
		if (alloc_live != live_before)
			leaks_ok = false;
	}

	check(results_ok && nomem > 0, "%s: each of %ld allocations failing "
		  "gives \"out of memory\" or the normal result (%ld did)", what,
		  calls, nomem);
	check(leaks_ok, "%s: nothing leaks when an allocation fails", what);
	manifest_free(base);
	check(alloc_live == 0, "%s: no live allocations at the end", what);
	free(text);
}

/*
 * main: run every group of tests and print the summary line.
 */
int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	json_set_alloc_funcs(manifest_test_malloc, manifest_test_free);

	test_sha256();
	test_names();
	test_durations();
	test_valid_manifest();
	test_golden();
	test_canonical_properties();
	test_same_digest();
	test_changed_digest();
	test_spec_numbers();
	test_topo_order();
	test_errors();
	test_error_edges();
	test_scale();
	test_hostile();
	test_alloc_failures("valid 3-job manifest", three_jobs);
	test_alloc_failures("cycle",
						"{'jobs':[{'name':'a','command':'x','needs':['b']},"
						"{'name':'b','command':'x','needs':['c']},"
						"{'name':'c','command':'x','needs':['a']}]}");
	test_alloc_failures("unknown need",
						"{'jobs':[{'name':'a','command':'x','needs':['z']}]}");
	test_alloc_failures("duplicate key",
						"{'jobs':[{'name':'a','command':'x'}],'jobs':1}");
	test_alloc_failures("bad duration",
						"{'jobs':[{'name':'a','command':'x','timeout':'x'}]}");
	check(alloc_live == 0, "no allocation of the module or jansson is left "
		  "live (%ld)", alloc_live);

	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}
