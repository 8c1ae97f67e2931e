/**
 * @file diag_log.h
 * @brief Diagnostic logging API of Sentinel IXL.
 *
 * Every module reports events through diag_log(). Records are formatted as
 * one text line (see docs/log-format.md), written to the local ring buffer,
 * sent over the CAN diagnostics bus and, for level ERROR, stored in the
 * non-volatile event recorder.
 *
 * Line layout:
 *   <timestamp> <ch> <subsys> <level> <code> <object> <function>: <message> (<details>)
 *
 * Example:
 *   2024-11-19T05:41:10.292Z A PMC  ERROR E73-B P12 pm_check_lock: lock not
 *   confirmed within timeout (cmd=REV lock_ms=1500 elapsed_ms=1510 det=REV
 *   lock=0 retries=1/1)
 */
#ifndef SIXL_DIAG_LOG_H
#define SIXL_DIAG_LOG_H

#include <stdint.h>
#include <stdarg.h>
#include "config_loader.h"   /* diag_level_t */

/** Maximum formatted line length including the newline (SIXL-2279). */
#define DIAG_LINE_MAX 256

/**
 * Log one record.
 *
 * @param level    DIAG_ERROR, DIAG_WARN, DIAG_INFO or DIAG_DEBUG; records
 *                 below diag_log_level are dropped (errors never are)
 * @param subsys   "IXC", "PMC", "TCM", "ACE", "BLI", "BSI", "CFG", "DIAG", "LINK"
 * @param code     code string from error_codes.h, or CODE_NONE ("-")
 * @param object   object id such as "P12", "T104", "AS203", or "-"
 * @param func     name of the calling function (pass __func__)
 * @param message  short fixed text
 * @param fmt      printf-style format for the "key=value" details, or NULL
 */
void diag_log(diag_level_t level, const char *subsys, const char *code,
              const char *object, const char *func, const char *message,
              const char *fmt, ...);

/**
 * Format a record into @p out (at most DIAG_LINE_MAX bytes including the
 * terminating newline). Exposed for unit tests. Returns the line length.
 */
int diag_format_line(char *out, const char *timestamp, char channel,
                     diag_level_t level, const char *subsys, const char *code,
                     const char *object, const char *func, const char *message,
                     const char *details);

/**
 * Check the local clock against the last TIME_SYNC reference from core A;
 * raises E82-B when the offset exceeds time_sync_max_offset_ms.
 */
void diag_time_sync_check(int64_t reference_ms, int64_t local_ms);

/** Called by the CAN driver when the controller enters bus-off (E82-A). */
void diag_bus_off_notify(void);

/** Rotate the local log file when it exceeds diag_log_rotate_kb. */
void diag_rotate(void);

#endif /* SIXL_DIAG_LOG_H */
