/**
 * @file route_lock.c
 * @brief Route setting, locking, flank protection and sectional release.
 *
 * Sentinel IXL 4.3.1. Codes raised here: E61-A, E61-B, E62-A, E63-C, W61-D
 * (docs/errors-interlocking.md, docs/route-locking.rst).
 */
#include <stdio.h>
#include <string.h>

#include "route_lock.h"
#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"

static const char *const POS[] = { "NONE", "NOR", "REV", "BOTH" };

static bool rl_shares_element(const rl_route_t *a, const rl_route_t *b)
{
    for (uint8_t i = 0; i < a->section_count; i++)
        for (uint8_t j = 0; j < b->section_count; j++)
            if (a->sections[i] == b->sections[j]) return true;
    for (uint8_t i = 0; i < a->point_count; i++)
        for (uint8_t j = 0; j < b->point_count; j++)
            if (a->points[i].point == b->points[j].point) return true;
    return false;
}

bool rl_request_route(rl_route_t *r, rl_route_t *const all[], uint8_t n, uint32_t now_ms)
{
    for (uint8_t k = 0; k < n; k++) {
        const rl_route_t *o = all[k];
        if (o == r || o->state == RL_IDLE) continue;
        if (rl_shares_element(r, o)) {
            diag_log(DIAG_ERROR, "IXC", ERR_RL_CONFLICT, r->id, __func__,
                     "route conflicts with a locked route", "conflict=%s", o->id);
            return false;
        }
    }
    r->state = RL_SETTING;
    r->request_ms = now_ms;
    r->flank_reported = false;
    diag_log(DIAG_INFO, "IXC", CODE_NONE, r->id, __func__, "route requested", NULL);
    return true;
}

/**
 * Bring flank elements into their protecting position.
 * strict : every flank point must be locked in the protecting position.
 * relaxed: a flank point that cannot be moved is accepted if it is
 *          detected and its section is clear.
 * Returns true when flank protection is provided.
 */
static bool rl_check_flank(rl_route_t *r, uint32_t now_ms)
{
    const bool strict = (cfg_get()->flank_protection_mode == FLANK_STRICT);
    bool ok = true;

    for (uint8_t i = 0; i < r->flank_count; i++) {
        pm_point_t *p = r->flank[i].point;
        if (pm_is_locked(p) && p->cmd == r->flank[i].required) continue;
        if (p->route_locked) {                          /* held by another route */
            if (!strict && p->det != PM_POS_NONE && !p->section_occupied) continue;
            if (!r->flank_reported) {
                r->flank_reported = true;
                diag_log(DIAG_ERROR, "IXC", ERR_RL_FLANK, r->id, __func__,
                         "flank protection not obtainable", "flank=%s required=%s mode=%s",
                         p->id, POS[r->flank[i].required], strict ? "strict" : "relaxed");
            }
        } else if (p->state != PM_STARTING && p->state != PM_STROKE &&
                   p->state != PM_WAIT_LOCK && p->state != PM_RETRY_PULSE) {
            pm_throw(p, r->flank[i].required, now_ms);
        }
        ok = false;
    }
    return ok;
}

/** Mark all route elements as locked; PMC rejects throws from now on (E72-A). */
static void rl_lock_route(rl_route_t *r)
{
    for (uint8_t i = 0; i < r->point_count; i++) r->points[i].point->route_locked = true;
    for (uint8_t i = 0; i < r->flank_count; i++)  r->flank[i].point->route_locked = true;
    for (uint8_t i = 0; i < r->section_count; i++) {
        rl_section_t *s = r->sections[i];
        s->was_occupied = s->release_running = s->released = false;
    }
    r->state = RL_LOCKED;
    diag_log(DIAG_INFO, "IXC", CODE_NONE, r->id, __func__, "route locked", NULL);
}

/**
 * Drive points, wait for lock/clear/flank, supervise route_setting_timeout_s.
 * On timeout, the first element still missing is reported in waiting_for.
 */
static void rl_setting(rl_route_t *r, uint32_t now_ms)
{
    char waiting[32] = "";
    bool all_ok = true;

    for (uint8_t i = 0; i < r->point_count; i++) {
        pm_point_t *p = r->points[i].point;
        if (pm_is_locked(p) && p->cmd == r->points[i].required) continue;
        all_ok = false;
        if (waiting[0] == '\0') snprintf(waiting, sizeof waiting, "%s:LOCK", p->id);
        if (p->state == PM_IDLE || p->state == PM_LOCKED) pm_throw(p, r->points[i].required, now_ms);
    }
    for (uint8_t i = 0; i < r->section_count; i++) {
        if (!r->sections[i]->occupied) continue;
        all_ok = false;
        if (waiting[0] == '\0') snprintf(waiting, sizeof waiting, "%s:CLEAR", r->sections[i]->id);
    }
    if (!rl_check_flank(r, now_ms)) {
        all_ok = false;
        if (waiting[0] == '\0') snprintf(waiting, sizeof waiting, "FLANK");
    }
    if (all_ok) {
        rl_lock_route(r);
        return;
    }
    const uint32_t limit_s = cfg_get()->route_setting_timeout_s;
    if (now_ms - r->request_ms > limit_s * 1000u) {
        char msg[48];
        snprintf(msg, sizeof msg, "route not locked within %u s", limit_s);
        diag_log(DIAG_ERROR, "IXC", ERR_RL_SET_TIMEOUT, r->id, "rl_cycle", msg,
                 "waiting_for=%s", waiting);
        r->state = RL_IDLE;
    }
}

/**
 * Start the release timer for one section.
 *
 * KNOWN ISSUE SIXL-2342 (4.3.x): the delay is converted to milliseconds
 * and stored in the 16-bit field release_delay_ms. For
 * route_release_delay_s > 65 the product exceeds 65535 and wraps:
 * 90 s -> 24464 ms, 120 s -> 54464 ms. The section is released early.
 * Keep route_release_delay_s <= 65 until 4.4.0 (uint32_t field).
 */
void rl_start_release(rl_route_t *r, rl_section_t *sec, uint32_t now_ms)
{
    const sixl_config_t *c = cfg_get();
    sec->release_delay_ms = (uint16_t)(c->route_release_delay_s * 1000u);   /* SIXL-2342 */
    sec->release_start_ms = now_ms;
    sec->release_running  = true;
    diag_log(DIAG_DEBUG, "IXC", CODE_NONE, r->id, __func__, "section release timer started",
             "section=%s delay_ms=%u", sec->id, (unsigned)sec->release_delay_ms);
}

/** Sectional release behind the train, in route order. */
static void rl_release_sections(rl_route_t *r, uint32_t now_ms)
{
    bool all_released = true;

    for (uint8_t i = 0; i < r->section_count; i++) {
        rl_section_t *s = r->sections[i];
        rl_section_t *prev = (i > 0) ? r->sections[i - 1] : NULL;
        if (s->released) continue;
        all_released = false;

        if (s->occupied) {
            if (s->release_running) {
                diag_log(DIAG_ERROR, "IXC", ERR_RL_RELEASE_SEQ, r->id, __func__,
                         "section re-occupied during release", "section=%s", s->id);
                s->release_running = false;
            }
            s->was_occupied = true;
            continue;
        }
        if (s->was_occupied && !s->release_running) {
            if (prev != NULL && !prev->was_occupied) {
                diag_log(DIAG_ERROR, "IXC", ERR_RL_RELEASE_SEQ, r->id, __func__,
                         "sectional release sequence violated", "section=%s previous=%s",
                         s->id, prev->id);
                continue;
            }
            rl_start_release(r, s, now_ms);
        }
        if (s->release_running && (prev == NULL || prev->released) &&
            now_ms - s->release_start_ms >= s->release_delay_ms) {
            s->released = true;
            s->release_running = false;
            for (uint8_t k = 0; k < s->point_count; k++) s->points[k]->route_locked = false;
            diag_log(DIAG_INFO, "IXC", CODE_NONE, r->id, __func__, "section released",
                     "section=%s", s->id);
        }
    }
    if (all_released) {
        for (uint8_t i = 0; i < r->flank_count; i++) r->flank[i].point->route_locked = false;
        r->state = RL_IDLE;
    }
}

void rl_cycle(rl_route_t *r, uint32_t now_ms)
{
    switch (r->state) {
    case RL_SETTING:
        rl_setting(r, now_ms);
        break;
    case RL_LOCKED: case RL_SIGNAL_CLEAR: case RL_OCCUPIED: case RL_RELEASING:
        rl_release_sections(r, now_ms);
        break;
    case RL_APPROACH_LOCKED:
        if (now_ms - r->approach_lock_start_ms >= cfg_get()->approach_lock_time_s * 1000u) {
            for (uint8_t i = 0; i < r->section_count; i++) r->sections[i]->released = true;
            for (uint8_t i = 0; i < r->point_count; i++) r->points[i].point->route_locked = false;
            for (uint8_t i = 0; i < r->flank_count; i++) r->flank[i].point->route_locked = false;
            r->state = RL_IDLE;
        }
        break;
    default:
        break;
    }
}

void rl_cancel(rl_route_t *r, uint32_t now_ms)
{
    if (r->state == RL_SIGNAL_CLEAR && r->train_approaching) {
        r->state = RL_APPROACH_LOCKED;
        r->approach_lock_start_ms = now_ms;
        diag_log(DIAG_WARN, "IXC", WRN_RL_APPROACH_LOCK, r->id, __func__,
                 "approach locking timer running", "time_s=%u", cfg_get()->approach_lock_time_s);
        return;
    }
    r->train_approaching = false;
    r->state = RL_APPROACH_LOCKED;           /* reuse path with zero wait */
    r->approach_lock_start_ms = now_ms - cfg_get()->approach_lock_time_s * 1000u;
}
