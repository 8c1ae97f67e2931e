/**
 * @file brake_interface.h
 * @brief Brake supervision interface (BSI) for automated shunting vehicles.
 *
 * Sentinel IXL-Y only. One bsi_vehicle_t per vehicle known to the yard
 * radio gateway. Speeds are exchanged in units of 0.1 km/h ("dkmh").
 * See docs/config-brake.md and docs/errors-brake.md.
 */
#ifndef SIXL_BRAKE_INTERFACE_H
#define SIXL_BRAKE_INTERFACE_H

#include <stdint.h>
#include <stdbool.h>

#define BSI_CYCLE_MS              50u
#define BSI_SPEED_DIFF_CYCLES     3u     /* consecutive cycles before E55-C */

typedef enum {
    BSI_DEMAND_RELEASE,
    BSI_DEMAND_SERVICE,
    BSI_DEMAND_EMERGENCY
} bsi_demand_t;

typedef enum {
    BSI_TRIG_NONE,
    BSI_TRIG_ROLLAWAY,
    BSI_TRIG_RELEASE_TIMEOUT,
    BSI_TRIG_WATCHDOG,
    BSI_TRIG_SPEED_MISMATCH,
    BSI_TRIG_AUTHORITY_WITHDRAWN
} bsi_trigger_t;

/** Feedback telegram from the vehicle (via yard radio gateway). */
typedef struct {
    bool     brake_applied;      /* vehicle reports brakes applied          */
    bool     ready;              /* vehicle reservoirs charged, self-test ok */
    uint16_t pipe_kpa;           /* brake pipe pressure                      */
    uint16_t v_ch1_dkmh;         /* speed channel 1, 0.1 km/h                */
    uint16_t v_ch2_dkmh;         /* speed channel 2, 0.1 km/h                */
} bsi_feedback_t;

typedef struct {
    char           id[12];             /* "LOCO-07"                          */
    bsi_demand_t   demand;
    bool           has_authority;      /* movement authority from the IXC    */
    bool           release_pending;    /* release commanded, not confirmed   */
    uint32_t       release_cmd_ms;
    uint32_t       last_telegram_ms;
    uint32_t       eb_since_ms;
    bsi_trigger_t  eb_trigger;
    uint8_t        speed_diff_cycles;
    bool           pipe_warned;
    bsi_feedback_t fb;
} bsi_vehicle_t;

void bsi_init(bsi_vehicle_t *v, const char *id, uint32_t now_ms);

/** Store a feedback telegram and kick the watchdog. */
void bsi_receive(bsi_vehicle_t *v, const bsi_feedback_t *fb, uint32_t now_ms);

/**
 * Command brake release (movement about to start). Refused while the
 * emergency brake latch (brake_eb_latch_s) is running.
 */
bool bsi_command_release(bsi_vehicle_t *v, uint32_t now_ms);

/** Movement authority granted / withdrawn by the interlocking. */
void bsi_set_authority(bsi_vehicle_t *v, bool granted, uint32_t now_ms);

/**
 * Demand emergency brake. Logs E52-B in addition when the vehicle is at
 * standstill, with the trigger name.
 */
void bsi_apply_emergency(bsi_vehicle_t *v, bsi_trigger_t trigger, uint32_t now_ms);

/** 50 ms supervision cycle; returns the demand to send to the vehicle. */
bsi_demand_t bsi_cycle(bsi_vehicle_t *v, uint32_t now_ms);

/** true when both speed channels are below brake_standstill_speed_kmh. */
bool bsi_at_standstill(const bsi_vehicle_t *v);

#endif /* SIXL_BRAKE_INTERFACE_H */
