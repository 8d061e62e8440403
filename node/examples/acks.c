/* acks.c -- acknowledgements in both directions, with timeouts.
 *
 * Client -> server:  "sum"(a, b, ack)        -> ack(a + b)
 * Server -> client:  "quiz"(ack)             -> the server asks this client "question"("2+2?")
 *                                               and waits QUIZ_MS for its answer, then acks
 *                                               the quiz with {answer} or {error:"timeout"}
 * Broadcast acks:    "poll"(question, ack)   -> every socket is asked "vote"(question); after
 *                                               all answered, or POLL_MS, the caller gets
 *                                               {complete, votes:[...]} (a timeout is an
 *                                               outcome: the votes that did arrive)
 *
 * usage: example-acks [--host 127.0.0.1] [--port 3000]   (port 0 = any free port)
 *
 * Shows: sio_ack (client->server), sio_socket_emit_ack with a timeout (server->client),
 * sio_emit_ack on a broadcast (every answer, or what came before the timeout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

#include "example.h"

#define QUIZ_MS 1000
#define POLL_MS 1000

/* ack({...}) with one object argument. */
static void ack_object(sio_ack_t *ack, cJSON *obj)
{
    cJSON *args = cJSON_CreateArray();

    cJSON_AddItemToArray(args, obj);
    sio_ack(ack, args, NULL, 0);
}

static void on_sum(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                   size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *a = cJSON_GetArrayItem(args, 0), *b = cJSON_GetArrayItem(args, 1);
    cJSON *out;

    if (ack == NULL)
        return; /* nobody to answer */
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) {
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", "sum takes two numbers");
        ack_object(ack, out);
        return;
    }
    out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, cJSON_CreateNumber(a->valuedouble + b->valuedouble));
    sio_ack(ack, out, NULL, 0);
}

/* The client's answer to "question" arrived, or QUIZ_MS passed: runs exactly once. */
static void on_answer(sio_socket_t *s, int err, const cJSON *args, const sio_bin_t *bins,
                      size_t nbins, void *ud)
{
    sio_ack_t *quiz_ack = ud;
    cJSON *out = cJSON_CreateObject();

    if (err == SIO_ECLOSED) {
        /* The socket is gone, and the quiz's ack with it. */
        cJSON_Delete(out);
        return;
    }
    if (err == SIO_OK)
        cJSON_AddItemToObject(out, "answer", cJSON_Duplicate(cJSON_GetArrayItem(args, 0), 1));
    else
        cJSON_AddStringToObject(out, "error", sio_strerror(err));
    if (quiz_ack != NULL)
        ack_object(quiz_ack, out);
    else
        cJSON_Delete(out);
}

static void on_quiz(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                    size_t nbins, sio_ack_t *ack, void *ud)
{
    cJSON *q = cJSON_CreateArray();

    cJSON_AddItemToArray(q, cJSON_CreateString("2+2?"));
    if (sio_socket_emit_ack(s, "question", q, NULL, 0, QUIZ_MS, on_answer, ack) != SIO_OK &&
        ack != NULL) {
        cJSON *out = cJSON_CreateObject();

        cJSON_AddStringToObject(out, "error", "could not ask");
        ack_object(ack, out);
    }
}

/* A poll waiting for its votes. Its caller may disconnect meanwhile, and its ack
 * is freed with it: the disconnect handler clears ack, so on_votes never touches a
 * freed ack. */
typedef struct poll {
    struct poll *next;
    sio_socket_t *caller;
    sio_ack_t *ack;
} poll_t;

static poll_t *polls;

static void poll_unlink(poll_t *p)
{
    for (poll_t **pp = &polls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

/* Every targeted socket answered (SIO_OK) or POLL_MS passed (SIO_ETIMEDOUT). */
static void on_votes(int err, const cJSON *responses, void *ud)
{
    poll_t *p = ud;
    cJSON *out = cJSON_CreateObject(), *votes = cJSON_CreateArray();
    const cJSON *r;

    /* responses holds one argument array per answering client: keep each first one. */
    cJSON_ArrayForEach(r, responses)
        cJSON_AddItemToArray(votes, cJSON_Duplicate(cJSON_GetArrayItem(r, 0), 1));
    cJSON_AddBoolToObject(out, "complete", err == SIO_OK);
    cJSON_AddItemToObject(out, "votes", votes);
    if (p->ack != NULL)
        ack_object(p->ack, out);
    else
        cJSON_Delete(out);
    poll_unlink(p);
    free(p);
}

static void on_poll(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                    size_t nbins, sio_ack_t *ack, void *ud)
{
    cJSON *q = cJSON_CreateArray();
    const cJSON *question = cJSON_GetArrayItem(args, 0);
    poll_t *p = malloc(sizeof(*p));

    if (p == NULL) {
        cJSON_Delete(q);
        return;
    }
    p->caller = s;
    p->ack = ack;
    p->next = polls;
    polls = p;
    cJSON_AddItemToArray(q, question ? cJSON_Duplicate(question, 1) : cJSON_CreateNull());
    /* io.timeout(POLL_MS).emit("vote", question, cb) -- the caller votes too. */
    if (sio_emit_ack(sio_timeout(sio_op(sio_socket_nsp(s)), POLL_MS), "vote", q, NULL, 0, on_votes,
                     p) != SIO_OK) {
        /* A call that fails never runs its callback. */
        poll_unlink(p);
        free(p);
        if (ack != NULL) {
            cJSON *out = cJSON_CreateObject();

            cJSON_AddStringToObject(out, "error", "could not poll");
            ack_object(ack, out);
        }
    }
}

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    for (poll_t *p = polls; p != NULL; p = p->next) {
        if (p->caller == s)
            p->ack = NULL;
    }
}

static void on_connection(sio_socket_t *s, void *ud)
{
    sio_socket_on(s, "sum", on_sum, NULL);
    sio_socket_on(s, "quiz", on_quiz, NULL);
    sio_socket_on(s, "poll", on_poll, NULL);
    sio_socket_on_disconnect(s, on_disconnect, NULL);
}

static void setup(sio_server_t *server)
{
    sio_nsp_on_connection(sio_server_of(server, "/"), on_connection, NULL);
}

int main(int argc, char **argv)
{
    return example_main(argc, argv, setup);
}
