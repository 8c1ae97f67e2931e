/**
 * @file error_codes.h
 * @brief Sentinel IXL error and warning code strings.
 *
 * Code format: <E|W><family>-<letter>. The first digit of the family
 * identifies the subsystem (0 system/config, 1 track circuits, 3 axle
 * counters, 4 balise/LEU, 5 brake supervision, 6 routes, 7 points,
 * 8 communication). See docs/error-code-scheme.md.
 *
 * Modules pass these strings to diag_log(); keep them in sync with the
 * error reference pages under docs/errors-*.md.
 */
#ifndef SIXL_ERROR_CODES_H
#define SIXL_ERROR_CODES_H

/* --- family 05: system and configuration (config_loader.c) ----------- */
#define ERR_CFG_PARSE            "E05-A"  /* config file cannot be parsed       */
#define ERR_CFG_CHANNEL_CRC      "E05-B"  /* config checksum differs A/B        */
#define WRN_CFG_UNKNOWN_KEY      "W05-A"  /* unknown key ignored                */
#define WRN_CFG_CLAMPED          "W05-D"  /* value out of range, clamped        */

/* --- families 12-14: track circuits (track_circuit.c) --------------- */
#define ERR_TC_UNEXPECTED_OCC    "E12-A"  /* occupied without approach          */
#define ERR_TC_FLICKER           "E12-B"  /* flicker above tc_flicker_limit     */
#define ERR_TC_RX_HIGH           "E12-C"  /* rx above tc_max_receiver_ma        */
#define ERR_TC_TX_FAULT          "E14-A"  /* transmitter out of tolerance       */
#define ERR_TC_LOSS_OF_SHUNT     "E14-B"  /* train not detected                 */
#define WRN_TC_MARGIN_LOW        "W12-A"  /* rx margin above pickup low         */
#define WRN_TC_ACE_DISAGREE      "W12-C"  /* TC and ACE disagree                */

/* --- families 31-33: axle counter evaluator (axle_counter.c) -------- */
#define ERR_ACE_MISMATCH         "E31-A"  /* section disturbed                  */
#define ERR_ACE_SWEEP_REJECTED   "E31-B"  /* sweep run not accepted             */
#define ERR_ACE_HEAD_PHASE       "E31-C"  /* counting head phase fault          */
#define ERR_ACE_NEGATIVE         "E33-A"  /* negative count                     */
#define ERR_ACE_HEAD_COMM        "E33-B"  /* counting head comm lost            */
#define WRN_ACE_SWEEP_PENDING    "W31-A"  /* reset accepted, sweep required     */
#define WRN_ACE_HEAD_SUPPLY      "W31-D"  /* head supply voltage low            */

/* --- families 44-46: balise / LEU interface (balise_decoder.c) ------ */
#define ERR_BLI_CRC              "E44-A"  /* read-back frame CRC mismatch       */
#define ERR_BLI_UNKNOWN_PACKET   "E44-B"  /* unknown packet / no end marker     */
#define ERR_BLI_P44_LENGTH       "E44-C"  /* Packet 44 length inconsistent      */
#define ERR_BLI_P44_XUSER        "E44-D"  /* Packet 44 NID_XUSER not allowed    */
#define ERR_BLI_LEU_TIMEOUT      "E45-A"  /* no read-back in time               */
#define ERR_BLI_LEU_DEFAULT      "E45-B"  /* LEU sends default telegram         */
#define ERR_BLI_LINKING          "E46-A"  /* Packet 5 linked group not found    */
#define WRN_BLI_P44_IGNORED      "W44-B"  /* Packet 44 skipped (non-strict)     */

/* --- families 52-55: brake supervision interface (brake_interface.c) */
#define ERR_BSI_RELEASE_TIMEOUT  "E52-A"  /* release not confirmed              */
#define ERR_BSI_EB_STANDSTILL    "E52-B"  /* emergency brake at standstill      */
#define ERR_BSI_FEEDBACK         "E52-C"  /* feedback contradicts command       */
#define ERR_BSI_WATCHDOG         "E55-A"  /* vehicle telegram watchdog          */
#define ERR_BSI_SPEED_DIFF       "E55-C"  /* speed channels disagree            */
#define WRN_BSI_PIPE_LOW         "W55-B"  /* brake pipe pressure low            */

/* --- families 61-63: interlocking core routes (route_lock.c) -------- */
#define ERR_RL_SET_TIMEOUT       "E61-A"  /* route not locked in time           */
#define ERR_RL_CONFLICT          "E61-B"  /* conflicting route locked           */
#define ERR_RL_FLANK             "E62-A"  /* flank protection not obtainable    */
#define ERR_RL_RELEASE_SEQ       "E63-C"  /* sectional release sequence         */
#define WRN_RL_APPROACH_LOCK     "W61-D"  /* approach locking timer running     */

/* --- families 71-75: point machine controller (point_machine.c) ----- */
#define ERR_PM_DET_LOST          "E71-A"  /* detection lost without command     */
#define ERR_PM_DET_BOTH          "E71-B"  /* contradictory detection            */
#define ERR_PM_REJECTED          "E72-A"  /* throw rejected, point locked       */
#define ERR_PM_NO_START          "E72-C"  /* motor did not start                */
#define ERR_PM_OVERCURRENT       "E73-A"  /* motor over-current                 */
#define ERR_PM_LOCK_TIMEOUT      "E73-B"  /* lock not confirmed in time         */
#define ERR_PM_LOCK_LOST         "E73-C"  /* lock lost while holding            */
#define ERR_PM_THROW_TIMEOUT     "E74-A"  /* no cut-off within throw timeout    */
#define ERR_PM_TRAILED           "E75-D"  /* point trailed                      */
#define WRN_PM_LOCK_RETRY        "W73-D"  /* locked only after retry            */
#define WRN_PM_THROW_SLOW        "W74-A"  /* throw time above warn level        */

/* --- families 81-82: communication and diagnostics ------------------ */
#define ERR_LINK_HEARTBEAT       "E81-A"  /* OC heartbeat lost (safe_link.adb)  */
#define ERR_LINK_SEQUENCE        "E81-B"  /* sequence error (safe_link.adb)     */
#define ERR_LINK_CRC_RATE        "E81-C"  /* CRC error rate (safe_link.adb)     */
#define ERR_DIAG_BUS_OFF         "E82-A"  /* CAN bus off                        */
#define ERR_DIAG_TIME_SYNC       "E82-B"  /* time sync offset exceeded          */
#define WRN_LINK_JITTER          "W81-D"  /* heartbeat jitter high              */

/** No code: informational records use this placeholder. */
#define CODE_NONE                "-"

#endif /* SIXL_ERROR_CODES_H */
