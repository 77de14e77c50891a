/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_registry.c - model references, the Hub cache's paths and the
 * checks on names that come from a server.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub_cache.h"
#include "hub_fetch.h"
#include "hub_http.h"
#include "model_ref.h"
#include "testutil.h"
#include "util.h"

static void parse_hub(const char *text, const char *id, const char *rev)
{
    amg_model_ref r;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_model_ref_parse(text, &r, &e), AMG_OK);
    ck_assert_int_eq(r.kind, AMG_MREF_HUB);
    ck_assert_str_eq(r.repo_id, id);
    ck_assert_str_eq(r.revision, rev);
    amg_model_ref_free(&r);
}

static void parse_path(const char *text)
{
    amg_model_ref r;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_model_ref_parse(text, &r, &e), AMG_OK);
    ck_assert_int_eq(r.kind, AMG_MREF_PATH);
    ck_assert_str_eq(r.path, text);
    amg_model_ref_free(&r);
}

START_TEST(ref_forms)
{
    parse_hub("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "main");
    parse_hub("org/name@v1.0", "org/name", "v1.0");
    parse_hub("org/name@refs/pr/1", "org/name", "refs/pr/1");
    parse_hub("hf://org/name", "org/name", "main");
    parse_hub("hf://org/na_me@0123456789abcdef0123456789abcdef01234567",
              "org/na_me", "0123456789abcdef0123456789abcdef01234567");
    parse_path("/abs/model");
    parse_path("./org/name");
    parse_path("../org/name");
    parse_path("~/models/x");
    parse_path("just-a-name");              /* no slash: not a Hub id */
    parse_path("a/b/c");                    /* two slashes */
    parse_path("org/na..me");               /* ".." inside a part */
    parse_path("org/name@");                /* empty revision */
}
END_TEST

START_TEST(ref_existing_folder_is_a_path)
{
    char *dir = tu_mkdtemp(), *cwd = getcwd(NULL, 0);

    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(mkdir("org", 0777), 0);
    ck_assert_int_eq(mkdir("org/name", 0777), 0);
    parse_path("org/name");
    parse_hub("hf://org/name", "org/name", "main");
    ck_assert_int_eq(chdir(cwd), 0);
    free(cwd);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ref_bad_hf)
{
    static const char *const bad[] = {
        "hf://org", "hf://org/a/b", "hf://org/-x", "hf://org/x-", "hf://o--g/x",
        "hf://org/x@..", "hf://org/x@/main", "hf://org/x@a b", "hf://", "",
    };
    amg_model_ref r;
    amg_err e;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        amg_err_clear(&e);
        ck_assert_msg(amg_model_ref_parse(bad[i], &r, &e) != AMG_OK,
                      "accepted '%s'", bad[i]);
        ck_assert_str_ne(e.msg, "");
    }
}
END_TEST

START_TEST(server_names)
{
    static const char *const good[] = {
        "model.safetensors", "a/b/c.json", "..x", "x..", "a/.hidden",
        "sp ace.txt",
    };
    static const char *const bad[] = {
        "", "/etc/passwd", "../x", "a/../../b", "a/..", "..", ".", "./a",
        "a//b", "a/", "back\\slash", "ctl\x01", "new\nline", "del\x7f",
    };
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(amg_hub_path_safe(good[i]), "refused '%s'", good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!amg_hub_path_safe(bad[i]), "accepted bad[%zu]", i);
    ck_assert(amg_hub_etag_valid("0123456789abcdef0123456789abcdef01234567"));
    ck_assert(amg_hub_etag_valid("0123456789abcdef0123456789abcdef"
                                 "0123456789abcdef0123456789abcdef"));
    ck_assert(!amg_hub_etag_valid("0123456789ABCDEF0123456789abcdef01234567"));
    ck_assert(!amg_hub_etag_valid("../../../../../../../../../../etc/passwd"));
    ck_assert(!amg_hub_etag_valid("abc"));
    ck_assert(amg_hub_is_commit("0123456789abcdef0123456789abcdef01234567"));
    ck_assert(!amg_hub_is_commit("main"));
}
END_TEST

START_TEST(cache_paths)
{
    char *s;

    s = amg_hub_repo_folder("meta-llama/Llama-3.1-8B");
    ck_assert_str_eq(s, "models--meta-llama--Llama-3.1-8B");
    free(s);
    s = amg_hub_link_target("model.safetensors", "ab12");
    ck_assert_str_eq(s, "../../blobs/ab12");
    free(s);
    s = amg_hub_link_target("a/b/c.json", "ab12");
    ck_assert_str_eq(s, "../../../../blobs/ab12");
    free(s);
}
END_TEST

static void expect_root(const char *want)
{
    char *r = amg_hub_cache_root();

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r, want);
    free(r);
}

START_TEST(cache_root_precedence)
{
    unsetenv("HF_HUB_CACHE");
    unsetenv("HUGGINGFACE_HUB_CACHE");
    unsetenv("HF_HOME");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    expect_root("/home/u/.cache/huggingface/hub");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    expect_root("/xdg/huggingface/hub");
    setenv("HF_HOME", "~/hf", 1);
    expect_root("/home/u/hf/hub");
    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    expect_root("/legacy");
    setenv("HF_HUB_CACHE", "/new", 1);
    expect_root("/new");
}
END_TEST

START_TEST(offline_values)
{
    static const char *const yes[] = { "1", "ON", "yes", "True" };
    static const char *const no[] = { "0", "off", "", "2" };
    size_t i;

    unsetenv("TRANSFORMERS_OFFLINE");
    for (i = 0; i < 4; i++) {
        setenv("HF_HUB_OFFLINE", yes[i], 1);
        ck_assert_msg(amg_hub_offline(), "'%s' is not offline", yes[i]);
        setenv("HF_HUB_OFFLINE", no[i], 1);
        ck_assert_msg(!amg_hub_offline(), "'%s' is offline", no[i]);
    }
    unsetenv("HF_HUB_OFFLINE");
    setenv("TRANSFORMERS_OFFLINE", "1", 1);
    ck_assert(amg_hub_offline());
    unsetenv("TRANSFORMERS_OFFLINE");
}
END_TEST

START_TEST(refs_roundtrip)
{
    static const char c1[] = "0123456789abcdef0123456789abcdef01234567";
    char *dir = tu_mkdtemp(), *data = NULL, *p, got[41];
    size_t len;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_hub_ref_read(dir, "main", got), 0);
    ck_assert_int_eq(amg_hub_ref_write(dir, "refs/pr/1", c1, &e), AMG_OK);
    ck_assert_int_eq(amg_hub_ref_read(dir, "refs/pr/1", got), 1);
    ck_assert_str_eq(got, c1);
    p = amg_path_join(dir, "refs/refs/pr/1");
    ck_assert_int_eq(amg_read_file(p, 100, &data, &len, &e), AMG_OK);
    ck_assert_uint_eq(len, 40);             /* no newline, as Python reads */
    free(data);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(mkdirs_refuses_symlinks)
{
    char *dir = tu_mkdtemp(), *link = amg_path_join(dir, "snapshots");
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(symlink("/tmp", link), 0);
    ck_assert_int_ne(amg_hub_mkdirs(dir, "snapshots/abc", &e), AMG_OK);
    ck_assert_ptr_nonnull(strstr(e.msg, "not a real folder"));
    free(link);
    tu_rmtree(dir);
}
END_TEST

START_TEST(wanted_files)
{
    static const char *const inc[] = { "*.md" };

    ck_assert(amg_hub_wanted("model-00001-of-00002.safetensors", NULL, 0));
    ck_assert(amg_hub_wanted("model.safetensors.index.json", NULL, 0));
    ck_assert(amg_hub_wanted("config.json", NULL, 0));
    ck_assert(amg_hub_wanted("generation_config.json", NULL, 0));
    ck_assert(amg_hub_wanted("tokenizer.json", NULL, 0));
    ck_assert(amg_hub_wanted("tokenizer.model", NULL, 0));
    ck_assert(!amg_hub_wanted("pytorch_model.bin", NULL, 0));
    ck_assert(!amg_hub_wanted("README.md", NULL, 0));
    ck_assert(!amg_hub_wanted("sub/model.safetensors", NULL, 0));
    ck_assert(amg_hub_wanted("README.md", inc, 1));
    ck_assert(amg_hub_wanted("docs/x.md", inc, 1));
}
END_TEST

START_TEST(quote)
{
    char *s = amg_hub_quote("refs/pr/1", 0);

    ck_assert_str_eq(s, "refs%2Fpr%2F1");
    free(s);
    s = amg_hub_quote("a b/c+d.json", 1);
    ck_assert_str_eq(s, "a%20b/c%2Bd.json");
    free(s);
}
END_TEST

/* Header lines as libcurl hands them over: CRLF, no terminator. */
static void header(amg_hub_resp *r, const char *line)
{
    amg__hub_parse_header(r, line, strlen(line));
}

START_TEST(header_lines)
{
    static const char bytes[] = "X-Error-Code: GatedRepo and more";
    amg_hub_resp r;

    memset(&r, 0, sizeof(r));
    header(&r, "HTTP/1.1 302 Found\r\n");
    ck_assert_int_eq(r.status, 302);
    /* the LFS sha256 of X-Linked-Etag wins over the pointer's ETag, in
     * whichever order they come */
    header(&r, "ETag: \"8e1f7a2b0c39d4e5f60718293a4b5c6d7e8f9012\"\r\n");
    header(&r, "x-linked-etag: W/\"9f86d081\"\r\n");
    header(&r, "ETag: \"ignored\"\r\n");
    ck_assert_str_eq(r.etag, "9f86d081");
    ck_assert(r.linked_etag);
    header(&r, "X-Linked-Size: 16472\r\n");
    header(&r, "Content-Length: 0\r\n");
    ck_assert(r.has_size);
    ck_assert_uint_eq(r.size, 16472);
    header(&r, "X-Repo-Commit:  3f786850e387550fdab836ed7e6dc881de23001b"
           " \r\n");
    ck_assert_str_eq(r.commit, "3f786850e387550fdab836ed7e6dc881de23001b");
    header(&r, "Link: <http://h/a?c=0>; rel=\"prev\", <http://h/a?c=6>; "
           "rel=\"next\"\r\n");
    ck_assert_ptr_nonnull(r.next);
    ck_assert_str_eq(r.next, "http://h/a?c=6");
    /* only the first 23 bytes are the line */
    amg__hub_parse_header(&r, bytes, 23);
    ck_assert_str_eq(r.error_code, "GatedRepo");
    header(&r, "Content-Length: 12x\r\n");
    ck_assert_uint_eq(r.size, 16472);
    /* a second response (after a redirect or 100 Continue) starts over */
    header(&r, "HTTP/2 200\r\n");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(r.next);
    ck_assert_str_eq(r.etag, "");
    ck_assert(!r.has_size);
    header(&r, "Content-Length: 12x\r\n");
    ck_assert(!r.has_size);
    header(&r, "Content-Length: 41\r\n");
    ck_assert(r.has_size);
    ck_assert_uint_eq(r.size, 41);
    /* signs are not digits: strtoull alone would read -1 as 2^64 - 1 */
    header(&r, "HTTP/2 200\r\n");
    header(&r, "X-Linked-Size: -1\r\n");
    ck_assert(!r.has_size);
    header(&r, "Content-Length: +5\r\n");
    ck_assert(!r.has_size);
    header(&r, "Content-Length: 99999999999999999999999\r\n");
    ck_assert(!r.has_size);
    amg_hub_resp_free(&r);
}
END_TEST

#define SHA1 "8e1f7a2b0c39d4e5f60718293a4b5c6d7e8f9012"
#define SHA256 "9f86d081884c7d659a2feaa0c55ad015" \
               "a3bf4f1b2b0b822cd15d6c15b0f00a08"

START_TEST(tree_pages)
{
    const char *page1 =
        "[{\"type\": \"file\", \"path\": \"config.json\", \"size\": 41, "
        "\"oid\": \"" SHA1 "\"}, {\"type\": \"directory\", \"path\": "
        "\"extra\", \"size\": 0, \"oid\": \"" SHA1 "\"}, {\"type\": \"file\", "
        "\"path\": \"model.safetensors\", \"size\": 134, \"oid\": \"" SHA1
        "\", \"lfs\": {\"oid\": \"" SHA256 "\", \"size\": 16472}}]";
    const char *page2 =
        "[{\"type\": \"file\", \"path\": \"extra/notes.txt\", \"size\": 23, "
        "\"oid\": \"" SHA1 "\"}]";
    amg_hub_listing l = { 0 };
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg__hub_parse_tree(&l, page1, "org/tiny", "http://h",
                                         &e), AMG_OK);
    ck_assert_int_eq(amg__hub_parse_tree(&l, page2, "org/tiny", "http://h",
                                         &e), AMG_OK);
    /* the folder is not a file; the LFS file is its blob, not its pointer */
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.e[0].path, "config.json");
    ck_assert_str_eq(l.e[0].etag, SHA1);
    ck_assert_uint_eq(l.e[0].size, 41);
    ck_assert_str_eq(l.e[1].path, "model.safetensors");
    ck_assert_str_eq(l.e[1].etag, SHA256);
    ck_assert_uint_eq(l.e[1].size, 16472);
    ck_assert_str_eq(l.e[2].path, "extra/notes.txt");
    amg__hub_listing_free(&l);

    ck_assert_int_eq(amg__hub_parse_tree(&l, "[{\"path\": \"a/../../x\", "
                                         "\"size\": 3, \"oid\": \"" SHA1
                                         "\"}]", "org/tiny", "http://h", &e),
                     AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a/../../x'"));
    amg__hub_listing_free(&l);
    amg_err_clear(&e);
    ck_assert_int_eq(amg__hub_parse_tree(&l, "[{\"path\": \"a\", \"size\": "
                                         "-1, \"oid\": \"" SHA1 "\"}]",
                                         "org/tiny", "http://h", &e),
                     AMG_EFORMAT);
    amg_err_clear(&e);
    ck_assert_int_eq(amg__hub_parse_tree(&l, "{}", "org/tiny", "http://h",
                                         &e), AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'org/tiny'"));
    ck_assert_uint_eq(l.n, 0);
    amg__hub_listing_free(&l);
}
END_TEST

START_TEST(revision_answer)
{
    char commit[41];
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg__hub_parse_revision("{\"id\": \"org/tiny\", \"sha\": "
                                             "\"" SHA1 "\"}", "org/tiny",
                                             "main", "http://h", commit, &e),
                     AMG_OK);
    ck_assert_str_eq(commit, SHA1);
    ck_assert_int_eq(amg__hub_parse_revision("{\"sha\": \"main\"}",
                                             "org/tiny", "main", "http://h",
                                             commit, &e), AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'org/tiny'"));
    amg_err_clear(&e);
    ck_assert_int_eq(amg__hub_parse_revision("not json", "org/tiny", "v1",
                                             "http://h", commit, &e),
                     AMG_EFORMAT);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, ref_forms);
    tcase_add_test(tc, ref_existing_folder_is_a_path);
    tcase_add_test(tc, ref_bad_hf);
    tcase_add_test(tc, server_names);
    tcase_add_test(tc, cache_paths);
    tcase_add_test(tc, cache_root_precedence);
    tcase_add_test(tc, offline_values);
    tcase_add_test(tc, refs_roundtrip);
    tcase_add_test(tc, mkdirs_refuses_symlinks);
    tcase_add_test(tc, wanted_files);
    tcase_add_test(tc, quote);
    tcase_add_test(tc, header_lines);
    tcase_add_test(tc, tree_pages);
    tcase_add_test(tc, revision_answer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
