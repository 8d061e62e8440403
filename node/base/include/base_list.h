/* base_list.h -- intrusive doubly linked lists (the libuv QUEUE / lws_dll2 idea).
 *
 * A struct that can be on a list embeds a base_list_t; BASE_CONTAINER_OF gets the
 * struct back. The head is a base_list_t too, circular, so insert and remove never
 * branch on emptiness. Header-only because every function is two or three stores.
 */
#ifndef BASE_LIST_H
#define BASE_LIST_H

#include <stddef.h>

typedef struct base_list {
    struct base_list *prev;
    struct base_list *next;
} base_list_t;

#define BASE_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterate safely against removal of the current node. */
#define BASE_LIST_FOREACH_SAFE(it, tmp, head)                                                       \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

static inline void base_list_init(base_list_t *head)
{
    head->prev = head->next = head;
}

static inline int base_list_empty(const base_list_t *head)
{
    return head->next == head;
}

static inline void base_list_push_back(base_list_t *head, base_list_t *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlinks node and leaves it self-linked, so a second remove is harmless. */
static inline void base_list_remove(base_list_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

#endif
