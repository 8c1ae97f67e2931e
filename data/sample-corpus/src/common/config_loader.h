/**
 * @file config_loader.h
 * @brief Station configuration structure and loader API (Sentinel IXL 4.3.1).
 *
 * One field per configuration key. Keys, defaults and ranges are
 * documented in docs/config-reference.md; the key table with the actual
 * limits lives in config_loader.c (CFG_KEYS).
 */
#ifndef SIXL_CONFIG_LOADER_H
#define SIXL_CONFIG_LOADER_H

#include <stdint.h>
#include <stdbool.h>

#define CFG_MAX_OVERRIDES     256
#define CFG_MAX_XUSER         32
#define CFG_KEY_LEN           40
#define CFG_OBJ_LEN           16

typedef enum { ACE_RESET_DIRECT, ACE_RESET_CONDITIONAL, ACE_RESET_PREPARATORY } ace_reset_mode_t;
typedef enum { BLI_CRC_OFF, BLI_CRC16, BLI_CRC32 } bli_crc_mode_t;
typedef enum { FLANK_STRICT, FLANK_RELAXED } flank_mode_t;
typedef enum { DIAG_ERROR, DIAG_WARN, DIAG_INFO, DIAG_DEBUG } diag_level_t;

/** Parsed station configuration. Field names equal the key names. */
typedef struct {
    /* points (PMC) */
    uint32_t pm_lock_timeout_ms;          /* 1500, 500..5000            */
    uint32_t pm_throw_timeout_ms;         /* 6000, 2000..15000          */
    uint32_t pm_detection_debounce_ms;    /* 40, 10..200                */
    uint32_t pm_motor_start_window_ms;    /* 300, 100..1000             */
    uint32_t pm_motor_current_limit_ma;   /* 4500, 1000..9000           */
    uint32_t pm_lock_retry_count;         /* 1, 0..3                    */
    uint32_t pm_throw_warn_pct;           /* 80, 50..95                 */
    /* track circuits (TCM) */
    uint32_t tc_pickup_threshold_ma;      /* 120, 40..400               */
    uint32_t tc_dropaway_threshold_ma;    /* 90, 30..380                */
    uint32_t tc_clear_delay_ms;           /* 2000, 500..10000           */
    uint32_t tc_flicker_limit;            /* 6, 2..30 per minute        */
    uint32_t tc_max_receiver_ma;          /* 600, 200..1000             */
    uint32_t tc_margin_warn_pct;          /* 15, 5..50                  */
    /* axle counters (ACE) */
    ace_reset_mode_t ace_reset_mode;      /* conditional                */
    uint32_t ace_min_sweep_axles;         /* 4, 2..16                   */
    uint32_t ace_head_phase_tolerance_us; /* 250, 50..1000              */
    uint32_t ace_comm_timeout_ms;         /* 500, 100..2000             */
    /* balise / LEU (BLI) */
    bli_crc_mode_t balise_telegram_crc_mode; /* crc32                   */
    uint32_t leu_update_timeout_ms;       /* 1000, 200..5000            */
    uint16_t bli_packet44_allowed_xuser[CFG_MAX_XUSER];
    uint8_t  bli_packet44_allowed_count;  /* default: empty list        */
    bool     bli_packet44_strict;         /* true                       */
    uint32_t bli_linking_tolerance_m;     /* 5, 1..50                   */
    /* brake supervision (BSI) */
    uint32_t brake_release_timeout_ms;    /* 3000, 1000..10000          */
    uint32_t brake_standstill_speed_kmh;  /* 2, 1..5                    */
    uint32_t brake_standstill_speed_dkmh; /* derived: 0.1 km/h units (SIXL-2231) */
    uint32_t brake_speed_diff_kmh;        /* 5, 1..20                   */
    uint32_t brake_pipe_min_kpa;          /* 450, 300..600              */
    uint32_t brake_eb_latch_s;            /* 10, 0..60                  */
    uint32_t bsi_watchdog_ms;             /* 200, 50..1000              */
    /* interlocking core (IXC) */
    uint32_t route_release_delay_s;       /* 30, 0..240 (SIXL-2342 >65) */
    uint32_t route_setting_timeout_s;     /* 20, 5..120                 */
    uint32_t approach_lock_time_s;        /* 120, 0..600                */
    flank_mode_t flank_protection_mode;   /* strict                     */
    /* communication and diagnostics */
    uint32_t oc_heartbeat_ms;             /* 100, 20..1000              */
    uint32_t oc_heartbeat_miss_limit;     /* 3, 1..10                   */
    uint32_t safe_link_crc_error_limit;   /* 5, 1..100 per minute       */
    uint32_t time_sync_max_offset_ms;     /* 50, 5..1000                */
    diag_level_t diag_log_level;          /* info                       */
    uint32_t diag_log_rotate_kb;          /* 4096, 256..65536           */
    uint32_t diag_bus_bitrate;            /* 500000                     */
    bool     sixl_test_mode;              /* false                      */
} sixl_config_t;

/** One per-object override line, e.g. "pm_lock_timeout_ms@P12 = 2500". */
typedef struct {
    char     key[CFG_KEY_LEN];
    char     object[CFG_OBJ_LEN];
    uint32_t value;
} cfg_override_t;

/**
 * Load and validate the station configuration file.
 * Applies defaults first, then every line of the file. Logs W05-A for
 * unknown keys and W05-D for clamped values; returns false and logs E05-A
 * on a syntax error.
 */
bool cfg_load(const char *path);

/** Return the active configuration (valid after a successful cfg_load()). */
const sixl_config_t *cfg_get(void);

/**
 * Return the per-object value of a numeric key, or @p global_value when no
 * override "key@object" exists.
 */
uint32_t cfg_object_u32(const char *key, const char *object, uint32_t global_value);

/** CRC-32 over the parsed configuration, exchanged between channels. */
uint32_t cfg_checksum(void);

/** Compare own checksum with the other channel's; logs E05-B on mismatch. */
bool cfg_compare_channels(uint32_t other_channel_crc);

#endif /* SIXL_CONFIG_LOADER_H */
