/* list.h -- intrusive doubly linked lists (the libuv QUEUE / lws_dll2 idea).
 *
 * A struct that can be on a list embeds a sio_list_t; SIO_CONTAINER_OF gets the
 * struct back. The head is a sio_list_t too, circular, so insert and remove never
 * branch on emptiness. Header-only because every function is two or three stores.
 */
#ifndef SIO_LIST_H
#define SIO_LIST_H

#include <stddef.h>

typedef struct sio_list {
    struct sio_list *prev;
    struct sio_list *next;
} sio_list_t;

#define SIO_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterate safely against removal of the current node. */
#define SIO_LIST_FOREACH_SAFE(it, tmp, head)                                                       \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

static inline void sio_list_init(sio_list_t *head)
{
    head->prev = head->next = head;
}

static inline int sio_list_empty(const sio_list_t *head)
{
    return head->next == head;
}

static inline void sio_list_push_back(sio_list_t *head, sio_list_t *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlinks node and leaves it self-linked, so a second remove is harmless. */
static inline void sio_list_remove(sio_list_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

#endif
