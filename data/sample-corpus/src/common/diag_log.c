/**
 * @file diag_log.c
 * @brief Diagnostic log formatting, local storage and bus hand-over.
 *
 * See docs/log-format.md for the line layout and docs/diagnostics-bus.rst
 * for transport over the CAN diagnostics bus.
 */
#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include <stdlib.h>

#include "diag_log.h"
#include "error_codes.h"
#include "config_loader.h"
#include "platform.h"      /* plat_wallclock_iso8601(), plat_channel_id(), can_* */

#define DIAG_LOG_PATH      "/var/log/sixl/diag.log"
#define DIAG_LOG_OLD_PATH  "/var/log/sixl/diag.log.1"

static FILE *g_log_file;
static long  g_log_bytes;
static int   g_bus_off;

static const char *const LEVEL_NAMES[] = { "ERROR", "WARN", "INFO", "DEBUG" };

/**
 * Build one log line. Subsystem and level are left-aligned in fixed-width
 * columns (4 and 5 characters); the code column is always 5 characters
 * ("-" padded) so that columns line up in exports.
 *
 * Lines longer than DIAG_LINE_MAX - 1 are truncated with "..." and still
 * terminated with '\n'. Before 4.3.1 the newline was lost on truncation and
 * two records merged in exports (SIXL-2279).
 */
int diag_format_line(char *out, const char *timestamp, char channel,
                     diag_level_t level, const char *subsys, const char *code,
                     const char *object, const char *func, const char *message,
                     const char *details)
{
    int n = snprintf(out, DIAG_LINE_MAX, "%s %c %-4s %-5s %-5s %s %s: %s",
                     timestamp, channel, subsys, LEVEL_NAMES[level],
                     code ? code : CODE_NONE, object ? object : "-",
                     func, message);
    if (details != NULL && details[0] != '\0' && n > 0 && n < DIAG_LINE_MAX) {
        n += snprintf(out + n, (size_t)(DIAG_LINE_MAX - n), " (%s)", details);
    }
    if (n >= DIAG_LINE_MAX - 1) {
        /* truncate: keep room for "...\n\0" */
        memcpy(out + DIAG_LINE_MAX - 5, "...\n", 5);
        return DIAG_LINE_MAX - 1;
    }
    out[n++] = '\n';
    out[n] = '\0';
    return n;
}

void diag_log(diag_level_t level, const char *subsys, const char *code,
              const char *object, const char *func, const char *message,
              const char *fmt, ...)
{
    const sixl_config_t *cfg = cfg_get();
    char details[DIAG_LINE_MAX] = "";
    char ts[32];
    char line[DIAG_LINE_MAX];

    /* errors are always logged, whatever diag_log_level says */
    if (level != DIAG_ERROR && level > cfg->diag_log_level) {
        return;
    }
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(details, sizeof details, fmt, ap);
        va_end(ap);
    }
    plat_wallclock_iso8601(ts, sizeof ts);
    int len = diag_format_line(line, ts, plat_channel_id(), level, subsys,
                               code, object, func, message, details);

    if (g_log_file == NULL) {
        g_log_file = fopen(DIAG_LOG_PATH, "a");
    }
    if (g_log_file != NULL) {
        fputs(line, g_log_file);
        fflush(g_log_file);
        g_log_bytes += len;
        if (g_log_bytes > (long)cfg->diag_log_rotate_kb * 1024L) {
            diag_rotate();
        }
    }
    if (level == DIAG_ERROR) {
        plat_event_recorder_store(line, (size_t)len);
    }
    /* ring buffer is drained by the CAN task; on bus-off it keeps filling */
    can_ring_push(line, (size_t)len);
}

/**
 * Compare local wall clock with the TIME_SYNC reference.
 * Only log time stamps depend on this clock; supervision timers use the
 * monotonic clock (SIXL-2260, 4.3.1).
 */
void diag_time_sync_check(int64_t reference_ms, int64_t local_ms)
{
    const sixl_config_t *cfg = cfg_get();
    int64_t offset = llabs(local_ms - reference_ms);

    if (offset > (int64_t)cfg->time_sync_max_offset_ms) {
        diag_log(DIAG_ERROR, "DIAG", ERR_DIAG_TIME_SYNC, "-", __func__,
                 "time synchronisation offset exceeded",
                 "offset_ms=%lld limit_ms=%u",
                 (long long)offset, cfg->time_sync_max_offset_ms);
        plat_wallclock_adjust(reference_ms - local_ms);
    }
}

/**
 * CAN bus-off notification. Records stay in the ring buffer and are resent
 * oldest-first after automatic recovery (SIXL-1915 fixed in 4.1.2).
 */
void diag_bus_off_notify(void)
{
    if (!g_bus_off) {
        g_bus_off = 1;
        diag_log(DIAG_ERROR, "DIAG", ERR_DIAG_BUS_OFF, "-", __func__,
                 "diagnostics bus off", "bitrate=%u", cfg_get()->diag_bus_bitrate);
    }
    can_request_recovery();
}

/** Keep one previous generation of the local log file. */
void diag_rotate(void)
{
    if (g_log_file != NULL) {
        fclose(g_log_file);
        g_log_file = NULL;
    }
    rename(DIAG_LOG_PATH, DIAG_LOG_OLD_PATH);
    g_log_file = fopen(DIAG_LOG_PATH, "a");
    g_log_bytes = 0;
}
