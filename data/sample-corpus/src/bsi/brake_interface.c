/**
 * @file brake_interface.c
 * @brief Brake supervision: release confirmation, watchdog, speed plausibility,
 *        standstill (rollaway) supervision and emergency brake latching.
 *
 * Sentinel IXL 4.3.1. Codes raised here: E52-A, E52-B, E52-C, E55-A,
 * E55-C, W55-B (docs/errors-brake.md).
 */
#include <stdio.h>
#include <string.h>

#include "brake_interface.h"
#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"

static const char *const TRIGGER_NAMES[] = {
    "none", "rollaway", "release_timeout", "watchdog", "speed_mismatch", "authority_withdrawn"
};

void bsi_init(bsi_vehicle_t *v, const char *id, uint32_t now_ms)
{
    memset(v, 0, sizeof *v);
    snprintf(v->id, sizeof v->id, "%s", id);
    v->demand = BSI_DEMAND_EMERGENCY;      /* safe state until first release */
    v->eb_since_ms = now_ms;
    v->last_telegram_ms = now_ms;
}

/**
 * Standstill test. Both channels are compared with
 * brake_standstill_speed_dkmh, i.e. brake_standstill_speed_kmh converted to
 * 0.1 km/h at configuration load (config_loader.c).
 *
 * SIXL-2231 (fixed in 4.3.1): up to 4.3.0 the raw 0.1 km/h values were
 * compared with brake_standstill_speed_kmh directly. With the default of
 * 2 km/h, 0.2 km/h of sensor noise counted as movement.
 */
bool bsi_at_standstill(const bsi_vehicle_t *v)
{
    const uint32_t thr = cfg_get()->brake_standstill_speed_dkmh;
    return v->fb.v_ch1_dkmh < thr && v->fb.v_ch2_dkmh < thr;
}

void bsi_receive(bsi_vehicle_t *v, const bsi_feedback_t *fb, uint32_t now_ms)
{
    v->fb = *fb;
    v->last_telegram_ms = now_ms;
}

void bsi_apply_emergency(bsi_vehicle_t *v, bsi_trigger_t trigger, uint32_t now_ms)
{
    if (v->demand == BSI_DEMAND_EMERGENCY) return;       /* already latched */
    v->demand = BSI_DEMAND_EMERGENCY;
    v->eb_since_ms = now_ms;
    v->eb_trigger = trigger;
    v->release_pending = false;
    if (bsi_at_standstill(v)) {
        diag_log(DIAG_ERROR, "BSI", ERR_BSI_EB_STANDSTILL, v->id, __func__,
                 "emergency brake at standstill",
                 "trigger=%s v_ch1=%u v_ch2=%u threshold=%u",
                 TRIGGER_NAMES[trigger], v->fb.v_ch1_dkmh, v->fb.v_ch2_dkmh,
                 cfg_get()->brake_standstill_speed_dkmh);
    } else {
        diag_log(DIAG_INFO, "BSI", CODE_NONE, v->id, __func__, "emergency brake demanded",
                 "trigger=%s v_ch1=%u v_ch2=%u", TRIGGER_NAMES[trigger],
                 v->fb.v_ch1_dkmh, v->fb.v_ch2_dkmh);
    }
}

bool bsi_command_release(bsi_vehicle_t *v, uint32_t now_ms)
{
    const uint32_t latch_ms = cfg_get()->brake_eb_latch_s * 1000u;
    if (v->demand == BSI_DEMAND_EMERGENCY && now_ms - v->eb_since_ms < latch_ms) {
        return false;
    }
    v->demand = BSI_DEMAND_RELEASE;
    v->release_pending = true;
    v->release_cmd_ms = now_ms;
    v->pipe_warned = false;
    return true;
}

/**
 * Withdrawing authority from a vehicle whose brakes are released (or being
 * released) is treated as a rollaway risk: emergency brake with trigger
 * authority_withdrawn. Early route release (SIXL-2342) leads here.
 */
void bsi_set_authority(bsi_vehicle_t *v, bool granted, uint32_t now_ms)
{
    bool was = v->has_authority;
    v->has_authority = granted;
    if (was && !granted && v->demand == BSI_DEMAND_RELEASE) {
        bsi_apply_emergency(v, BSI_TRIG_AUTHORITY_WITHDRAWN, now_ms);
    }
}

/** Release must be confirmed (not applied, pipe >= brake_pipe_min_kpa). */
static void bsi_supervise_release(bsi_vehicle_t *v, uint32_t now_ms)
{
    const sixl_config_t *c = cfg_get();
    uint32_t elapsed = now_ms - v->release_cmd_ms;

    if (!v->release_pending) return;
    if (!v->fb.brake_applied && v->fb.pipe_kpa >= c->brake_pipe_min_kpa) {
        v->release_pending = false;
        return;
    }
    if (v->fb.pipe_kpa < c->brake_pipe_min_kpa && !v->pipe_warned) {
        v->pipe_warned = true;
        diag_log(DIAG_WARN, "BSI", WRN_BSI_PIPE_LOW, v->id, __func__, "brake pipe pressure low",
                 "pipe_kpa=%u min_kpa=%u", v->fb.pipe_kpa, c->brake_pipe_min_kpa);
    }
    if (elapsed > c->brake_release_timeout_ms) {
        diag_log(DIAG_ERROR, "BSI", ERR_BSI_RELEASE_TIMEOUT, v->id, __func__,
                 "brake release not confirmed in time",
                 "elapsed_ms=%u timeout_ms=%u applied=%d pipe_kpa=%u ready=%d",
                 elapsed, c->brake_release_timeout_ms, v->fb.brake_applied,
                 v->fb.pipe_kpa, v->fb.ready);
        bsi_apply_emergency(v, BSI_TRIG_RELEASE_TIMEOUT, now_ms);
    }
}

/** Rollaway: a vehicle without movement authority must stay at standstill. */
static void bsi_supervise_standstill(bsi_vehicle_t *v, uint32_t now_ms)
{
    if (!v->has_authority && !bsi_at_standstill(v)) {
        bsi_apply_emergency(v, BSI_TRIG_ROLLAWAY, now_ms);
    }
}

/** The two speed channels may differ by at most brake_speed_diff_kmh. */
static void bsi_check_speed_channels(bsi_vehicle_t *v, uint32_t now_ms)
{
    const uint32_t max_diff = cfg_get()->brake_speed_diff_kmh * 10u;   /* to 0.1 km/h */
    uint32_t a = v->fb.v_ch1_dkmh, b = v->fb.v_ch2_dkmh;
    uint32_t diff = a > b ? a - b : b - a;

    if (diff <= max_diff) {
        v->speed_diff_cycles = 0;
        return;
    }
    if (++v->speed_diff_cycles >= BSI_SPEED_DIFF_CYCLES) {
        diag_log(DIAG_ERROR, "BSI", ERR_BSI_SPEED_DIFF, v->id, __func__, "speed channels disagree",
                 "v_ch1=%u v_ch2=%u max_diff=%u", a, b, max_diff);
        bsi_apply_emergency(v, BSI_TRIG_SPEED_MISMATCH, now_ms);
        v->speed_diff_cycles = 0;
    }
}

/** Feedback plausibility (E52-C). */
static void bsi_check_feedback(bsi_vehicle_t *v, uint32_t now_ms)
{
    const uint32_t timeout = cfg_get()->brake_release_timeout_ms;
    bool contradicts =
        (v->demand == BSI_DEMAND_RELEASE && v->fb.brake_applied && !v->release_pending &&
         now_ms - v->release_cmd_ms > timeout) ||
        (v->demand == BSI_DEMAND_EMERGENCY && !v->fb.brake_applied &&
         now_ms - v->eb_since_ms > BSI_CYCLE_MS);
    if (contradicts) {
        diag_log(DIAG_ERROR, "BSI", ERR_BSI_FEEDBACK, v->id, __func__,
                 "brake feedback contradicts command", "demand=%d applied=%d",
                 (int)v->demand, v->fb.brake_applied);
    }
}

bsi_demand_t bsi_cycle(bsi_vehicle_t *v, uint32_t now_ms)
{
    const uint32_t wd = cfg_get()->bsi_watchdog_ms;

    if (now_ms - v->last_telegram_ms > wd) {
        if (v->demand != BSI_DEMAND_EMERGENCY) {
            diag_log(DIAG_ERROR, "BSI", ERR_BSI_WATCHDOG, v->id, __func__,
                     "brake supervision watchdog expired", "gap_ms=%u watchdog_ms=%u",
                     now_ms - v->last_telegram_ms, wd);
        }
        bsi_apply_emergency(v, BSI_TRIG_WATCHDOG, now_ms);
        return v->demand;
    }
    bsi_supervise_release(v, now_ms);
    bsi_supervise_standstill(v, now_ms);
    bsi_check_speed_channels(v, now_ms);
    bsi_check_feedback(v, now_ms);
    return v->demand;
}
