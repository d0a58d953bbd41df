/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store's memory index: a hash table of compact records with
 * an LRU list of clean ones and a pending list of writes the store has
 * not taken yet (see cache/cache.c).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"

/* ---- memory index ---- */

/*
 * FNV-1a over DOMAIN, also measuring it. Returns the length, or
 * LIM_DOMAIN_MAX + 1 when it is longer than a domain may be, so an
 * over-long argument is never scanned to its end.
 */
size_t
cache_domain_hash(const char *domain, uint32_t *hash)
{
	uint32_t h = 2166136261u;
	size_t n;

	for (n = 0; n <= LIM_DOMAIN_MAX && domain[n] != '\0'; n++) {
		h ^= (unsigned char)domain[n];
		h *= 16777619u;
	}
	*hash = h;
	return n;
}

unsigned long
cache_buckets_for(long max)
{
	unsigned long n = CACHE_BUCKETS_MIN;

	while (n < (unsigned long)max && n < CACHE_BUCKETS_MAX)
		n <<= 1;
	return n;
}

struct rec *
cache_index_find(const struct cache *c, const char *domain, size_t len,
		 uint32_t hash)
{
	struct rec *r;

	if (c->buckets == NULL)
		return NULL;
	for (r = c->buckets[hash & (c->nbuckets - 1)]; r != NULL; r = r->hnext)
		if (r->hash == hash && r->dlen == len &&
		    memcmp(r->data, domain, len) == 0)
			return r;
	return NULL;
}

void
cache_list_unlink(struct rlist *l, struct rec *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

void
cache_list_push_front(struct rlist *l, struct rec *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head != NULL)
		l->head->prev = r;
	l->head = r;
	if (l->tail == NULL)
		l->tail = r;
	l->n++;
}

static void
list_push_back(struct rlist *l, struct rec *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = r;
	l->tail = r;
	if (l->head == NULL)
		l->head = r;
	l->n++;
}

int
cache_rec_dirty(const struct rec *r)
{
	return (r->flags & (DIRTY_STS | DIRTY_DANE)) != 0;
}

/* Take R out of the index (hash chain and its list) without freeing it. */
void
cache_index_unlink(struct cache *c, struct rec *r)
{
	struct rec **pp = &c->buckets[r->hash & (c->nbuckets - 1)];

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	r->hnext = NULL;
	cache_list_unlink(cache_rec_dirty(r) ? &c->pending : &c->lru, r);
}

/* Evict clean records, least recently used first, down to MAX; a dirty
 * record is never evicted (it is on the pending list). */
void
cache_index_evict_to(struct cache *c, long max)
{
	struct rec *r;

	while (c->lru.n > max && (r = c->lru.tail) != NULL) {
		cache_index_unlink(c, r);
		free(r);
		c->stats.evictions++;
	}
}

/* Insert R (not yet in the index): a clean record as the most recently
 * used one, evicting beyond the bound; a dirty one at the end of the
 * pending list. */
void
cache_index_insert(struct cache *c, struct rec *r)
{
	struct rec **b;

	if (cache_rec_dirty(r))
		list_push_back(&c->pending, r);
	else {
		cache_index_evict_to(c, c->max - 1);
		cache_list_push_front(&c->lru, r);
	}
	b = &c->buckets[r->hash & (c->nbuckets - 1)];
	r->hnext = *b;
	*b = r;
}

static void
index_rehash_list(struct rec **nb, unsigned long n, struct rec *r)
{
	for (; r != NULL; r = r->next) {
		r->hnext = nb[r->hash & (n - 1)];
		nb[r->hash & (n - 1)] = r;
	}
}

/* Rebuild the bucket array for N slots; on allocation failure keep the
 * old array (still correct, only slower). */
void
cache_index_rehash(struct cache *c, unsigned long n)
{
	struct rec **nb;

	if (n == c->nbuckets)
		return;
	nb = calloc(n, sizeof(*nb));
	if (nb == NULL)
		return;
	index_rehash_list(nb, n, c->lru.head);
	index_rehash_list(nb, n, c->pending.head);
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

void
cache_loose_free(struct cache *c)
{
	free(c->loose);
	c->loose = NULL;
}

/* ---- compact records ---- */

/*
 * Check the variable fields of an STS row against their limits. Returns
 * 0, or -1 with a reason in *WHY.
 */
int
cache_sts_check(const struct cache_sts *sts, size_t *idlen, size_t *mxlen,
		size_t *errlen, const char **why)
{
	*idlen = strnlen(sts->policy_id, sizeof(sts->policy_id));
	if (*idlen == sizeof(sts->policy_id)) {
		*why = "policy id too long";
		return -1;
	}
	if (sts->mode < CACHE_STS_NONE || sts->mode > CACHE_STS_ENFORCE) {
		*why = "bad mode";
		return -1;
	}
	*mxlen = sts->mx != NULL ? strnlen(sts->mx, CACHE_MX_MAX + 1) : 0;
	if (*mxlen > CACHE_MX_MAX) {
		*why = "mx list too long";
		return -1;
	}
	*errlen = strnlen(sts->last_error, sizeof(sts->last_error));
	if (*errlen == sizeof(sts->last_error)) {
		*why = "last error too long";
		return -1;
	}
	return 0;
}

int
cache_dane_check(const struct cache_dane *dane, size_t *detlen,
		 const char **why)
{
	if (cache_dane_kind_name(dane->kind) == NULL) {
		*why = "bad DANE verdict";
		return -1;
	}
	*detlen = strnlen(dane->detail, sizeof(dane->detail));
	if (*detlen == sizeof(dane->detail)) {
		*why = "detail too long";
		return -1;
	}
	return 0;
}

int
cache_pin_check(const struct cache_pin *pin, size_t *pinlen, const char **why)
{
	*pinlen = 0;
	if (pin->exempt)
		return 0;
	*pinlen =
	    pin->answer != NULL ? strnlen(pin->answer, LIM_ANSWER_MAX + 1) : 0;
	if (*pinlen == 0 || *pinlen > LIM_ANSWER_MAX) {
		*why = "bad pinned answer";
		return -1;
	}
	return 0;
}

/*
 * A new record for DOMAIN (LEN bytes) holding STS, DANE and PIN (any may
 * be NULL), all already checked. Copies everything, so the inputs may point
 * into a record the caller frees afterwards.
 */
struct rec *
cache_rec_new(const char *domain, size_t len, uint32_t hash,
	      const struct cache_sts *sts, const struct cache_dane *dane,
	      const struct cache_pin *pin)
{
	size_t idlen = 0, mxlen = 0, errlen = 0, detlen = 0, pinlen = 0;
	const char *why;
	struct rec *r;
	char *p;

	if (sts != NULL &&
	    cache_sts_check(sts, &idlen, &mxlen, &errlen, &why) < 0)
		return NULL;
	if (dane != NULL && cache_dane_check(dane, &detlen, &why) < 0)
		return NULL;
	if (pin != NULL && cache_pin_check(pin, &pinlen, &why) < 0)
		return NULL;
	r = malloc(sizeof(*r) + len + idlen + mxlen + errlen + detlen + pinlen +
		   6);
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->hash = hash;
	r->dlen = (uint8_t)len;
	r->idlen = (uint8_t)idlen;
	r->mxlen = (uint32_t)mxlen;
	r->errlen = (uint8_t)errlen;
	r->detlen = (uint8_t)detlen;
	p = r->data;
	memcpy(p, domain, len);
	p[len] = '\0';
	p += len + 1;
	if (sts != NULL) {
		r->has_sts = 1;
		r->mode = (uint8_t)sts->mode;
		r->max_age = sts->max_age;
		r->fetched_at = sts->fetched_at;
		r->sts_expires = sts->expires_at;
		r->next_retry = sts->next_retry;
		memcpy(p, sts->policy_id, idlen);
		p += idlen;
		*p++ = '\0';
		if (mxlen > 0)
			memcpy(p, sts->mx, mxlen);
		p += mxlen;
		*p++ = '\0';
		memcpy(p, sts->last_error, errlen);
		p += errlen;
		*p++ = '\0';
	} else {
		memset(p, 0, 3);
		p += 3;
	}
	if (dane != NULL) {
		r->has_dane = 1;
		r->checked_at = dane->checked_at;
		r->dane_expires = dane->expires_at;
		r->dane_kind = (uint8_t)dane->kind;
		memcpy(p, dane->detail, detlen);
	}
	p[detlen] = '\0';
	p += detlen + 1;
	if (pin != NULL) {
		r->has_pin = 1;
		r->pin_exempt = (uint8_t)(pin->exempt != 0);
		r->pinlen = (uint16_t)pinlen;
		r->pinned_at = pin->pinned_at;
		if (pinlen > 0)
			memcpy(p, pin->answer, pinlen);
	}
	p[pinlen] = '\0';
	return r;
}

/* Offsets of the packed strings. */
static const char *
rec_id(const struct rec *r)
{
	return r->data + r->dlen + 1;
}

static const char *
rec_mx(const struct rec *r)
{
	return rec_id(r) + r->idlen + 1;
}

static const char *
rec_lasterr(const struct rec *r)
{
	return rec_mx(r) + r->mxlen + 1;
}

static const char *
rec_detail(const struct rec *r)
{
	return rec_lasterr(r) + r->errlen + 1;
}

static const char *
rec_pin(const struct rec *r)
{
	return rec_detail(r) + r->detlen + 1;
}

/*
 * Fill the STS part of an entry from R. The mx pointer points into R: it
 * is borrowed like the entry itself (valid until the next cache_* call).
 */
void
cache_rec_get_sts(const struct rec *r, struct cache_sts *sts)
{
	memcpy(sts->policy_id, rec_id(r), r->idlen + 1);
	sts->mode = r->mode;
	sts->mx = (char *)rec_mx(r);
	sts->max_age = r->max_age;
	sts->fetched_at = (time_t)r->fetched_at;
	sts->expires_at = (time_t)r->sts_expires;
	memcpy(sts->last_error, rec_lasterr(r), r->errlen + 1);
	sts->next_retry = (time_t)r->next_retry;
}

/* The pin part; the answer points into R, borrowed like mx. */
void
cache_rec_get_pin(const struct rec *r, struct cache_pin *pin)
{
	pin->exempt = r->pin_exempt;
	pin->answer = (char *)rec_pin(r);
	pin->pinned_at = (time_t)r->pinned_at;
}

void
cache_rec_get_dane(const struct rec *r, struct cache_dane *dane)
{
	dane->kind = r->dane_kind;
	memcpy(dane->detail, rec_detail(r), r->detlen + 1);
	dane->checked_at = (time_t)r->checked_at;
	dane->expires_at = (time_t)r->dane_expires;
}

/* Materialise R into the handle's scratch entry: only the bytes in use are
 * copied, not the whole ~600-byte struct. */
const struct cache_entry *
cache_rec_materialise(struct cache *c, const struct rec *r)
{
	struct cache_entry *e = &c->scratch;

	memcpy(e->domain, r->data, r->dlen + 1);
	e->has_sts = r->has_sts;
	if (r->has_sts)
		cache_rec_get_sts(r, &e->sts);
	else
		e->sts.mx = NULL;
	e->has_dane = r->has_dane;
	if (r->has_dane)
		cache_rec_get_dane(r, &e->dane);
	e->has_pin = r->has_pin;
	if (r->has_pin)
		cache_rec_get_pin(r, &e->pin);
	else
		e->pin.answer = NULL;
	e->sts_unknown = (r->flags & REC_PARTIAL) && !r->has_sts;
	e->flushed = 0;
	return e;
}
