/**
 * @file config_keys.h
 * @brief Key table of the station configuration (internal to config_loader.c).
 *
 * Each entry gives the key name, its type, the field offset in
 * sixl_config_t, the default, the allowed range and whether per-object
 * overrides ("key@OBJECT = value") are permitted. This table is the
 * single source of truth for defaults and limits; docs/config-reference.md
 * and src/tools/config_validator.py (KEYS) must be kept in sync with it.
 *
 * Values outside [min, max] are clamped by cfg_clamp() and logged as W05-D.
 */
#ifndef SIXL_CONFIG_KEYS_H
#define SIXL_CONFIG_KEYS_H

#include <stddef.h>
#include "config_loader.h"

typedef enum { K_U32, K_BOOL, K_ENUM, K_LIST } key_type_t;

typedef struct {
    const char *name;
    key_type_t  type;
    size_t      offset;
    uint32_t    def, min, max;
    bool        overridable;
    const char *enum_names;   /* "|"-separated for K_ENUM */
} cfg_key_t;

#define U32(k, d, lo, hi, o) { #k, K_U32, offsetof(sixl_config_t, k), d, lo, hi, o, NULL }
#define ENUM(k, d, names, o) { #k, K_ENUM, offsetof(sixl_config_t, k), d, 0, 0, o, names }
#define BOOL(k, d)           { #k, K_BOOL, offsetof(sixl_config_t, k), d, 0, 1, false, NULL }

static const cfg_key_t CFG_KEYS[] = {
    U32(pm_lock_timeout_ms,          1500,  500,   5000, true),
    U32(pm_throw_timeout_ms,         6000, 2000,  15000, true),
    U32(pm_detection_debounce_ms,      40,   10,    200, true),
    U32(pm_motor_start_window_ms,     300,  100,   1000, true),
    U32(pm_motor_current_limit_ma,   4500, 1000,   9000, true),
    U32(pm_lock_retry_count,            1,    0,      3, true),
    U32(pm_throw_warn_pct,             80,   50,     95, false),
    U32(tc_pickup_threshold_ma,       120,   40,    400, true),
    U32(tc_dropaway_threshold_ma,      90,   30,    380, true),
    U32(tc_clear_delay_ms,           2000,  500,  10000, true),
    U32(tc_flicker_limit,               6,    2,     30, false),
    U32(tc_max_receiver_ma,           600,  200,   1000, true),
    U32(tc_margin_warn_pct,            15,    5,     50, false),
    ENUM(ace_reset_mode, ACE_RESET_CONDITIONAL, "direct|conditional|preparatory", true),
    U32(ace_min_sweep_axles,            4,    2,     16, true),
    U32(ace_head_phase_tolerance_us,  250,   50,   1000, false),
    U32(ace_comm_timeout_ms,          500,  100,   2000, false),
    ENUM(balise_telegram_crc_mode, BLI_CRC32, "off|crc16|crc32", false),
    U32(leu_update_timeout_ms,       1000,  200,   5000, false),
    { "bli_packet44_allowed_xuser", K_LIST, 0, 0, 0, 511, false, NULL },
    BOOL(bli_packet44_strict, true),
    U32(bli_linking_tolerance_m,        5,    1,     50, false),
    U32(brake_release_timeout_ms,    3000, 1000,  10000, false),
    U32(brake_standstill_speed_kmh,     2,    1,      5, false),
    U32(brake_speed_diff_kmh,           5,    1,     20, false),
    U32(brake_pipe_min_kpa,           450,  300,    600, false),
    U32(brake_eb_latch_s,              10,    0,     60, false),
    U32(bsi_watchdog_ms,              200,   50,   1000, false),
    U32(route_release_delay_s,         30,    0,    240, false),
    U32(route_setting_timeout_s,       20,    5,    120, false),
    U32(approach_lock_time_s,         120,    0,    600, false),
    ENUM(flank_protection_mode, FLANK_STRICT, "strict|relaxed", false),
    U32(oc_heartbeat_ms,              100,   20,   1000, false),
    U32(oc_heartbeat_miss_limit,        3,    1,     10, false),
    U32(safe_link_crc_error_limit,      5,    1,    100, false),
    U32(time_sync_max_offset_ms,       50,    5,   1000, false),
    ENUM(diag_log_level, DIAG_INFO, "error|warn|info|debug", false),
    U32(diag_log_rotate_kb,          4096,  256,  65536, false),
    U32(diag_bus_bitrate,          500000, 125000, 1000000, false),
    BOOL(sixl_test_mode, false),
};
#define CFG_KEY_COUNT (sizeof(CFG_KEYS) / sizeof(CFG_KEYS[0]))

#endif /* SIXL_CONFIG_KEYS_H */
