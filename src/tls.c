/*
** tls.c: TLS with OpenSSL, as a pure engine over memory BIOs. Encrypted
** bytes go in (asyncio_tls_feed) and come out (asyncio_tls_take_out);
** plaintext goes in with asyncio_tls_write and out with asyncio_tls_read.
** The engine never touches a socket: stream.c moves the encrypted bytes
** with the same reads and writes as plain TCP, so drain, cancellation and
** EOF behave the same.
**
** Also here: core.ssl_context(...), the SSLContext userdata (an SSL_CTX),
** and what get_extra_info reports of a TLS connection.
*/
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "asyncio.h"

struct asyncio_tls {
  SSL *ssl;
  BIO *in, *out;          /* owned by 'ssl' (SSL_set_bio) */
  char reason[256];       /* why the last call failed */
};

typedef struct Context {
  SSL_CTX *ctx;
  int server;
} Context;


/* Why the last OpenSSL call failed: its error queue's reason (the queue
** is emptied), with the verification result when that was the cause. */
static void set_reason (asyncio_tls *t, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  long v = t != NULL && t->ssl != NULL ? SSL_get_verify_result(t->ssl) : X509_V_OK;
  if (r == NULL) r = fallback;
  if (v != X509_V_OK && e != 0 && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    snprintf(t->reason, sizeof t->reason, "%s: %s", r, X509_verify_cert_error_string(v));
  else
    snprintf(t->reason, sizeof t->reason, "%s", r);
  ERR_clear_error();
}


/* The engine ----------------------------------------------------------------- */

/* A new engine for the SSLContext at 'idx' ('hostname' for SNI and the
** certificate's name: NULL for none); NULL with the reason in 'err'. */
asyncio_tls *asyncio_tls_new (lua_State *L, int idx, const char *hostname, char *err, size_t errlen) {
  Context *c = (Context *)luaL_checkudata(L, idx, ASYNCIO_SSLCONTEXT);
  asyncio_tls *t;
  if (c->ctx == NULL) {  /* used by a finalizer after its own ran */
    snprintf(err, errlen, "the SSL context was finalized");
    return NULL;
  }
  t = (asyncio_tls *)calloc(1, sizeof *t);
  if (t == NULL) { snprintf(err, errlen, "not enough memory"); return NULL; }
  ERR_clear_error();
  t->ssl = SSL_new(c->ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->in == NULL || t->out == NULL) goto fail;
  SSL_set_bio(t->ssl, t->in, t->out);  /* an empty 'in' says "retry": its default */
  if (c->server) SSL_set_accept_state(t->ssl);
  else {
    SSL_set_connect_state(t->ssl);
    if (hostname != NULL && *hostname != '\0') {
      unsigned char ip[16];
      int isip = inet_pton(AF_INET, hostname, ip) == 1 || inet_pton(AF_INET6, hostname, ip) == 1;
      if (isip) {  /* no SNI for an address; the certificate must name it */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), hostname)) goto fail;
      }
      else if (!SSL_set_tlsext_host_name(t->ssl, hostname) || !SSL_set1_host(t->ssl, hostname))
        goto fail;
    }
  }
  return t;
fail:
  set_reason(t, "cannot create the TLS connection");
  snprintf(err, errlen, "%s", t->reason);
  if (t->ssl != NULL) SSL_free(t->ssl);
  else { BIO_free(t->in); BIO_free(t->out); }
  free(t);
  return NULL;
}


void asyncio_tls_free (asyncio_tls *t) {
  if (t == NULL) return;
  SSL_free(t->ssl);  /* frees both BIOs */
  free(t);
}


const char *asyncio_tls_reason (const asyncio_tls *t) { return t->reason; }


/* Encrypted bytes from the peer. */
int asyncio_tls_feed (asyncio_tls *t, const char *p, size_t n) {
  while (n > 0) {
    int k = BIO_write(t->in, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (k <= 0) { snprintf(t->reason, sizeof t->reason, "not enough memory"); return -1; }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}


/* The outcome of SSL call 'r' as ASYNCIO_TLS_*: WANT means it needs more
** bytes from the peer. */
static int outcome (asyncio_tls *t, int r, const char *what) {
  switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ: case SSL_ERROR_WANT_WRITE: return ASYNCIO_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN: return ASYNCIO_TLS_CLOSED;
    default: set_reason(t, what); return ASYNCIO_TLS_ERROR;
  }
}


/* One step of the handshake: ASYNCIO_TLS_OK once done. */
int asyncio_tls_handshake (asyncio_tls *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) return ASYNCIO_TLS_OK;
  r = outcome(t, r, "TLS handshake failed");
  return r == ASYNCIO_TLS_CLOSED ? ASYNCIO_TLS_ERROR : r;
}


/* Decrypt into 'p' (room for 'n'): the count (> 0), or ASYNCIO_TLS_WANT,
** ASYNCIO_TLS_CLOSED (the peer's close_notify), ASYNCIO_TLS_ERROR. */
long asyncio_tls_read (asyncio_tls *t, char *p, size_t n) {
  size_t got = 0;
  int r = SSL_read_ex(t->ssl, p, n, &got);
  if (r == 1) return (long)got;
  return outcome(t, r, "TLS read failed");
}


/* Encrypt 'n' bytes of 'p' (after the handshake the memory BIO takes all). */
int asyncio_tls_write (asyncio_tls *t, const char *p, size_t n) {
  size_t done = 0;
  if (n == 0) return ASYNCIO_TLS_OK;
  if (SSL_write_ex(t->ssl, p, n, &done) == 1 && done == n) return ASYNCIO_TLS_OK;
  set_reason(t, "TLS write failed");
  return ASYNCIO_TLS_ERROR;
}


/* Queue our close_notify (sent by the next take_out). */
void asyncio_tls_shutdown (asyncio_tls *t) {
  if (SSL_is_init_finished(t->ssl) && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
    SSL_shutdown(t->ssl);
  ERR_clear_error();
}


/* Encrypted bytes waiting to go to the peer. */
size_t asyncio_tls_pending_out (asyncio_tls *t) { return BIO_ctrl_pending(t->out); }


/* Move up to 'n' of them into 'p'; the count moved. */
size_t asyncio_tls_take_out (asyncio_tls *t, char *p, size_t n) {
  size_t got = 0;
  if (n == 0 || BIO_read_ex(t->out, p, n, &got) != 1) return 0;
  return got;
}


/* Set field 'key' of the table on top to time 'tm' as OpenSSL prints it
** ("Dec  2 01:30:00 2026 GMT"). */
static void set_time (lua_State *L, const ASN1_TIME *tm, const char *key) {
  BIO *mem = BIO_new(BIO_s_mem());
  char *p;
  long n;
  if (mem == NULL) return;
  ASN1_TIME_print(mem, tm);
  n = BIO_get_mem_data(mem, &p);
  lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
  lua_setfield(L, -2, key);
  BIO_free(mem);
}


/* Push what get_extra_info tells of the connection for 'name' ("cipher":
** {name, protocol, bits}; "peercert": {subject, issuer, notBefore,
** notAfter}; "version"), or nothing (0). */
int asyncio_tls_info (lua_State *L, asyncio_tls *t, const char *name) {
  if (strcmp(name, "version") == 0) {
    lua_pushstring(L, SSL_get_version(t->ssl));
    return 1;
  }
  if (strcmp(name, "cipher") == 0) {
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    if (c == NULL) return 0;
    lua_createtable(L, 3, 0);
    lua_pushstring(L, SSL_CIPHER_get_name(c));
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, SSL_CIPHER_get_version(c));
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
    lua_rawseti(L, -2, 3);
    return 1;
  }
  if (strcmp(name, "peercert") == 0) {
    X509 *x = SSL_get1_peer_certificate(t->ssl);
    char line[512];
    if (x == NULL) return 0;
    lua_createtable(L, 0, 4);
    X509_NAME_oneline(X509_get_subject_name(x), line, sizeof line);
    lua_pushstring(L, line);
    lua_setfield(L, -2, "subject");
    X509_NAME_oneline(X509_get_issuer_name(x), line, sizeof line);
    lua_pushstring(L, line);
    lua_setfield(L, -2, "issuer");
    set_time(L, X509_get0_notBefore(x), "notBefore");
    set_time(L, X509_get0_notAfter(x), "notAfter");
    X509_free(x);
    return 1;
  }
  return 0;
}


/* Contexts ---------------------------------------------------------------------- */

/* nil, "what 'file': why" ('why' NULL: OpenSSL's last reason); frees 'ctx'. */
static int ctx_fail_why (lua_State *L, SSL_CTX *ctx, const char *what, const char *file,
                         const char *why) {
  unsigned long e = ERR_peek_last_error();
  const char *r = why != NULL ? why : e != 0 ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  if (ctx != NULL) SSL_CTX_free(ctx);
  lua_pushnil(L);
  if (file != NULL) lua_pushfstring(L, "%s '%s': %s", what, file, r ? r : "failed");
  else lua_pushfstring(L, "%s: %s", what, r ? r : "failed");
  return 2;
}


static int ctx_fail (lua_State *L, SSL_CTX *ctx, const char *what, const char *file) {
  return ctx_fail_why(L, ctx, what, file, NULL);
}


/* An encrypted key's passphrase: OpenSSL asks for it through passphrase()
** while the key loads. Its default asks on the terminal, which would stop
** the whole process (the loop included) on a prompt. */
typedef struct Passphrase {
  const char *text;  /* the 'password' option, or NULL: refused */
  int asked;
  int room;  /* the most OpenSSL took, when 'text' was longer */
} Passphrase;

static int passphrase (char *buf, int size, int rwflag, void *u) {
  Passphrase *p = (Passphrase *)u;
  size_t n;
  (void)rwflag;
  p->asked = 1;
  if (p->text == NULL) return 0;
  if ((n = strlen(p->text)) > (size_t)size) {  /* not cut short: said so */
    p->room = size;
    return 0;
  }
  memcpy(buf, p->text, n);
  return (int)n;
}


/*
** core.ssl_context(server, cafile, certfile, keyfile, verify, password) ->
** context | nil, reason. A client verifies the server's certificate when 'verify'
** (against 'cafile', or the system's CAs); a server with 'verify' asks
** for and requires a client certificate signed by 'cafile'.
*/
static int core_ssl_context (lua_State *L) {
  int server = lua_toboolean(L, 1);
  const char *cafile = asyncio_optname(L, 2, NULL);
  const char *certfile = asyncio_optname(L, 3, NULL);
  const char *keyfile = asyncio_optname(L, 4, certfile);
  int verify = lua_toboolean(L, 5);
  Passphrase pass;
  Context *c;
  SSL_CTX *ctx;
  pass.text = asyncio_optname(L, 6, NULL);
  pass.asked = pass.room = 0;
  ERR_clear_error();
  ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) return ctx_fail(L, NULL, "ssl_context", NULL);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* no renegotiation: after the handshake a write never waits for a read;
  ** a peer that closes without close_notify is at EOF, as on plain TCP */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (certfile != NULL) {
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1)
      return ctx_fail(L, ctx, "cannot load certfile", certfile);
    SSL_CTX_set_default_passwd_cb(ctx, passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &pass);
    if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
      const char *why = NULL;  /* not asked for a password: OpenSSL's reason */
      char room[64];
      if (pass.asked && pass.text == NULL) why = "it is encrypted: give the password option";
      else if (pass.asked && pass.room > 0) {
        snprintf(room, sizeof room, "the password is longer than OpenSSL takes (%d bytes)",
                 pass.room);
        why = room;
      }
      else if (pass.asked) why = "wrong password, or a damaged key";
      return ctx_fail_why(L, ctx, "cannot load keyfile", keyfile, why);
    }
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);  /* 'pass' goes with this call */
    SSL_CTX_set_default_passwd_cb(ctx, NULL);
    if (SSL_CTX_check_private_key(ctx) != 1)
      return ctx_fail(L, ctx, "keyfile does not match certfile", keyfile);
  }
  if (cafile != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
      return ctx_fail(L, ctx, "cannot load cafile", cafile);
  }
  else if (verify && !server && SSL_CTX_set_default_verify_paths(ctx) != 1)
    return ctx_fail(L, ctx, "cannot load the system's certificates", NULL);
  if (verify)
    SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                   : SSL_VERIFY_PEER, NULL);
  else SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  c = (Context *)lua_newuserdatauv(L, sizeof *c, 0);
  c->ctx = ctx;
  c->server = server;
  luaL_setmetatable(L, ASYNCIO_SSLCONTEXT);
  return 1;
}


static int context_gc (lua_State *L) {
  Context *c = (Context *)luaL_checkudata(L, 1, ASYNCIO_SSLCONTEXT);
  if (c->ctx != NULL) SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}


void asyncio_tls_open (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", context_gc}, {NULL, NULL}};
  static const luaL_Reg module[] = {{"ssl_context", core_ssl_context}, {NULL, NULL}};
  luaL_newmetatable(L, ASYNCIO_SSLCONTEXT);
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
