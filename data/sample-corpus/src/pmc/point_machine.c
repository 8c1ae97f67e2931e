/**
 * @file point_machine.c
 * @brief Point machine controller (PMC) — throw, detection and lock supervision.
 *
 * Sentinel IXL 4.3.1. Codes raised here: E71-A, E71-B, E72-A, E72-C,
 * E73-A, E73-B, E73-C, E74-A, E75-D, W73-D, W74-A (docs/errors-points.md).
 *
 * Timing summary (docs/config-points.md):
 *   command --(pm_motor_start_window_ms)--> motor current present
 *   command --(pm_throw_timeout_ms)-------> motor cut-off
 *   cut-off --(pm_lock_timeout_ms)--------> debounced detection AND lock
 */
#include <stdio.h>
#include <string.h>

#include "point_machine.h"
#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"

static const char *const POS_NAMES[] = { "NONE", "NOR", "REV", "BOTH" };

static void pm_fail(pm_point_t *p, const char *code, const char *func,
                    const char *msg, const char *details)
{
    p->state = PM_FAILED;
    p->locked = false;
    diag_log(DIAG_ERROR, "PMC", code, p->id, func, msg, "%s", details);
}

void pm_init(pm_point_t *p, const char *id)
{
    const sixl_config_t *c = cfg_get();
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->state = PM_IDLE;
    p->lock_timeout_ms  = cfg_object_u32("pm_lock_timeout_ms", id, c->pm_lock_timeout_ms);
    p->throw_timeout_ms = cfg_object_u32("pm_throw_timeout_ms", id, c->pm_throw_timeout_ms);
    p->debounce_ms      = cfg_object_u32("pm_detection_debounce_ms", id, c->pm_detection_debounce_ms);
    p->start_window_ms  = cfg_object_u32("pm_motor_start_window_ms", id, c->pm_motor_start_window_ms);
    p->current_limit_ma = cfg_object_u32("pm_motor_current_limit_ma", id, c->pm_motor_current_limit_ma);
    p->retry_count      = cfg_object_u32("pm_lock_retry_count", id, c->pm_lock_retry_count);
}

/**
 * Start a throw towards @p target.
 * Rejected with E72-A if the point is locked in a route, held as flank
 * protection, or its track section is occupied.
 */
bool pm_throw(pm_point_t *p, pm_pos_t target, uint32_t now_ms)
{
    if (p->route_locked || p->section_occupied) {
        diag_log(DIAG_ERROR, "PMC", ERR_PM_REJECTED, p->id, __func__,
                 "throw rejected, point locked", "cmd=%s route_locked=%d occupied=%d",
                 POS_NAMES[target], p->route_locked, p->section_occupied);
        return false;
    }
    diag_log(DIAG_INFO, "PMC", CODE_NONE, p->id, __func__, "throw started",
             "cmd=%s from=%s", POS_NAMES[target], POS_NAMES[p->det]);
    p->cmd = target;
    p->state = PM_STARTING;
    p->locked = false;
    p->t_cmd_ms = now_ms;
    p->peak_ma = p->retries_used = p->det_ms = 0;
    return true;
}

/**
 * Debounce the end-position detection inputs.
 *
 * The raw value must stay unchanged for pm_detection_debounce_ms before it
 * becomes the debounced value p->det.
 *
 * KNOWN ISSUE SIXL-2291 (4.3.0, 4.3.1): det_stable_ticks counts 10 ms PMC
 * cycles but is compared with the configured value in milliseconds. The
 * effective debounce is PMC_CYCLE_MS times longer than configured (40 ms
 * configured -> 400 ms). The delay is consumed from the lock timeout in
 * pm_check_lock() and can cause intermittent E73-B. Intended comparison:
 *     p->det_stable_ticks * PMC_CYCLE_MS >= p->debounce_ms
 * Fix planned for 4.4.0.
 */
static void pm_check_detection(pm_point_t *p, const pm_inputs_t *in, uint32_t now_ms)
{
    pm_pos_t raw = in->det_nor ? (in->det_rev ? PM_POS_BOTH : PM_POS_NOR)
                               : (in->det_rev ? PM_POS_REV : PM_POS_NONE);

    if (raw != p->det_candidate) {
        p->det_candidate = raw;
        p->det_stable_ticks = 0;
        return;
    }
    if (p->det_stable_ticks < UINT32_MAX) p->det_stable_ticks++;
    if (p->det_stable_ticks >= p->debounce_ms && p->det != raw) {   /* SIXL-2291 */
        p->det = raw;
        if (p->state == PM_WAIT_LOCK) {
            p->det_ms = now_ms - p->t_cutoff_ms;
            diag_log(DIAG_DEBUG, "PMC", CODE_NONE, p->id, __func__, "detection stable",
                     "det=%s det_ms=%u", POS_NAMES[raw], p->det_ms);
        }
        if (raw == PM_POS_BOTH) {
            char d[64];
            snprintf(d, sizeof d, "cmd=%s", POS_NAMES[p->cmd]);
            pm_fail(p, ERR_PM_DET_BOTH, __func__, "contradictory detection", d);
        }
    }
}

/**
 * Supervise the lock after motor cut-off.
 *
 * The point is locked when the debounced detection equals the commanded
 * position and the lock contact is closed. The timer runs from motor
 * cut-off (or from the end of a retry pulse). On expiry the motor is
 * re-driven for PM_RETRY_PULSE_MS while retries remain (pm_lock_retry_count);
 * then E73-B is raised.
 *
 * Lock supervision is suspended while the hand-crank contact is open
 * (SIXL-2150, fixed in 4.3.0).
 */
static void pm_check_lock(pm_point_t *p, const pm_inputs_t *in, uint32_t now_ms)
{
    uint32_t elapsed = now_ms - p->t_cutoff_ms;
    char d[160];

    if (in->crank_open) {
        p->t_cutoff_ms = now_ms;
        return;
    }
    if (p->det == p->cmd && in->lock) {
        p->state = PM_LOCKED;
        p->locked = true;
        diag_log(DIAG_DEBUG, "PMC", CODE_NONE, p->id, __func__, "point locked",
                 "cmd=%s det_ms=%u locked_ms=%u retries=%u/%u", POS_NAMES[p->cmd],
                 p->det_ms, elapsed, p->retries_used, p->retry_count);
        if (p->retries_used > 0) {
            diag_log(DIAG_WARN, "PMC", WRN_PM_LOCK_RETRY, p->id, __func__,
                     "lock confirmed only after retry", "retries=%u/%u",
                     p->retries_used, p->retry_count);
        }
        return;
    }
    if (elapsed <= p->lock_timeout_ms) {
        return;
    }
    if (p->retries_used < p->retry_count) {
        diag_log(DIAG_WARN, "PMC", CODE_NONE, p->id, __func__,
                 "lock not confirmed, retrying", "elapsed_ms=%u retries=%u/%u",
                 elapsed, p->retries_used, p->retry_count);
        p->retries_used++;
        p->state = PM_RETRY_PULSE;
        p->t_pulse_ms = now_ms;
        return;
    }
    snprintf(d, sizeof d, "cmd=%s lock_ms=%u elapsed_ms=%u det=%s lock=%d retries=%u/%u",
             POS_NAMES[p->cmd], p->lock_timeout_ms, elapsed, POS_NAMES[p->det],
             in->lock ? 1 : 0, p->retries_used, p->retry_count);
    pm_fail(p, ERR_PM_LOCK_TIMEOUT, __func__, "lock not confirmed within timeout", d);
}

/**
 * Supervise a locked point at rest: loss of lock (E73-C), loss of
 * detection (E71-A), or either while the section is occupied (E75-D,
 * trailed point).
 */
static void pm_supervise_hold(pm_point_t *p, const pm_inputs_t *in)
{
    char d[96];
    snprintf(d, sizeof d, "cmd=%s det=%s lock=%d occupied=%d", POS_NAMES[p->cmd],
             POS_NAMES[p->det], in->lock ? 1 : 0, p->section_occupied);

    if ((p->det != p->cmd || !in->lock) && p->section_occupied) {
        pm_fail(p, ERR_PM_TRAILED, __func__, "point trailed", d);
    } else if (p->det != p->cmd) {
        pm_fail(p, ERR_PM_DET_LOST, __func__, "detection lost without command", d);
    } else if (!in->lock) {
        pm_fail(p, ERR_PM_LOCK_LOST, __func__, "lock lost while holding", d);
    }
}

bool pm_cycle(pm_point_t *p, const pm_inputs_t *in, uint32_t now_ms)
{
    uint32_t since_cmd = now_ms - p->t_cmd_ms;
    char d[96];

    pm_check_detection(p, in, now_ms);
    if (in->motor_ma > p->peak_ma) p->peak_ma = in->motor_ma;

    switch (p->state) {
    case PM_STARTING:
        if (in->motor_ma >= PM_START_THRESHOLD_MA) {
            p->state = PM_STROKE;
        } else if (since_cmd > p->start_window_ms) {
            snprintf(d, sizeof d, "cmd=%s window_ms=%u", POS_NAMES[p->cmd], p->start_window_ms);
            pm_fail(p, ERR_PM_NO_START, __func__, "motor did not start", d);
            return false;
        }
        return true;
    case PM_STROKE:
        if (in->motor_ma > p->current_limit_ma) {
            snprintf(d, sizeof d, "cmd=%s motor_ma=%u limit_ma=%u", POS_NAMES[p->cmd],
                     in->motor_ma, p->current_limit_ma);
            pm_fail(p, ERR_PM_OVERCURRENT, __func__, "motor over-current", d);
            return false;
        }
        if (in->motor_ma < PM_START_THRESHOLD_MA) {          /* end-of-stroke cut-off */
            p->state = PM_WAIT_LOCK;
            p->t_cutoff_ms = now_ms;
            diag_log(DIAG_DEBUG, "PMC", CODE_NONE, p->id, __func__, "motor cut-off",
                     "throw_ms=%u peak_ma=%u", since_cmd, p->peak_ma);
            if (since_cmd * 100u > p->throw_timeout_ms * cfg_get()->pm_throw_warn_pct) {
                diag_log(DIAG_WARN, "PMC", WRN_PM_THROW_SLOW, p->id, __func__,
                         "throw time degrading", "throw_ms=%u timeout_ms=%u warn_pct=%u",
                         since_cmd, p->throw_timeout_ms, cfg_get()->pm_throw_warn_pct);
            }
            return false;
        }
        if (since_cmd > p->throw_timeout_ms) {
            snprintf(d, sizeof d, "cmd=%s throw_ms=%u", POS_NAMES[p->cmd], since_cmd);
            pm_fail(p, ERR_PM_THROW_TIMEOUT, __func__, "throw timeout", d);
            return false;
        }
        return true;
    case PM_WAIT_LOCK:
        pm_check_lock(p, in, now_ms);
        return false;
    case PM_RETRY_PULSE:
        if (now_ms - p->t_pulse_ms >= PM_RETRY_PULSE_MS) {
            p->state = PM_WAIT_LOCK;
            p->t_cutoff_ms = now_ms;
            diag_log(DIAG_DEBUG, "PMC", CODE_NONE, p->id, __func__,
                     "retry pulse ended, lock timer restarted", "pulse_ms=%u", PM_RETRY_PULSE_MS);
            return false;
        }
        return true;
    case PM_LOCKED:
        pm_supervise_hold(p, in);
        return false;
    case PM_IDLE: case PM_FAILED: default:
        return false;
    }
}

bool pm_is_locked(const pm_point_t *p) { return p->state == PM_LOCKED && p->locked; }

void pm_restore(pm_point_t *p)
{
    diag_log(DIAG_INFO, "PMC", CODE_NONE, p->id, __func__, "point restored by supervisor", NULL);
    p->state = PM_IDLE;
}
