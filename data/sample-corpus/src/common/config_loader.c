/**
 * @file config_loader.c
 * @brief Station configuration loader for Sentinel IXL 4.3.1.
 *
 * File format: "key = value" lines, '#' comments, optional "[section]"
 * headings (ignored), per-object overrides "key@OBJECT = value".
 * See docs/config-reference.md and docs/errors-system-config.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <ctype.h>

#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"
#include "crc.h"
#include "config_keys.h"

static sixl_config_t  g_cfg;
static cfg_override_t g_overrides[CFG_MAX_OVERRIDES];
static size_t         g_override_count;

static const cfg_key_t *cfg_find_key(const char *name)
{
    for (size_t i = 0; i < CFG_KEY_COUNT; i++) {
        if (strcmp(CFG_KEYS[i].name, name) == 0) return &CFG_KEYS[i];
    }
    return NULL;
}

/**
 * Clamp a numeric value to the key's range; logs W05-D with key name
 * (key name added in 4.3.1, SIXL-2275).
 */
static uint32_t cfg_clamp(const cfg_key_t *k, uint32_t v)
{
    uint32_t used = v < k->min ? k->min : (v > k->max ? k->max : v);
    if (used != v) {
        diag_log(DIAG_WARN, "CFG", WRN_CFG_CLAMPED, "-", __func__,
                 "value out of range, clamped",
                 "key=%s value=%u min=%u max=%u used=%u",
                 k->name, v, k->min, k->max, used);
    }
    return used;
}

/** Parse an enumeration value; returns -1 if the name is not allowed. */
static int cfg_parse_enum(const cfg_key_t *k, const char *val)
{
    int idx = 0;
    const char *p = k->enum_names;
    size_t n = strlen(val);
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, val, n) == 0) return idx;
        idx++;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/**
 * Apply one "key[@object] = value" pair. Returns false on a parse error
 * (caller logs E05-A with file and line).
 */
static bool cfg_apply_key(const char *key, const char *object, const char *val, int line)
{
    const cfg_key_t *k = cfg_find_key(key);
    char *end = NULL;

    if (k == NULL) {
        diag_log(DIAG_WARN, "CFG", WRN_CFG_UNKNOWN_KEY, "-", __func__,
                 "unknown key ignored", "line=%d key=%s", line, key);
        return true;
    }
    if (object[0] != '\0') {
        if (!k->overridable || k->type != K_U32 || g_override_count >= CFG_MAX_OVERRIDES) return false;
        unsigned long v = strtoul(val, &end, 10);
        if (end == val || *end != '\0') return false;
        cfg_override_t *o = &g_overrides[g_override_count++];
        snprintf(o->key, sizeof o->key, "%s", key);
        snprintf(o->object, sizeof o->object, "%s", object);
        o->value = cfg_clamp(k, (uint32_t)v);
        return true;
    }

    uint8_t *field = (uint8_t *)&g_cfg + k->offset;
    switch (k->type) {
    case K_U32: {
        unsigned long v = strtoul(val, &end, 10);
        if (end == val || *end != '\0') return false;
        *(uint32_t *)field = cfg_clamp(k, (uint32_t)v);
        return true;
    }
    case K_BOOL:
        if (strcmp(val, "true") == 0)       *(bool *)field = true;
        else if (strcmp(val, "false") == 0) *(bool *)field = false;
        else return false;
        return true;
    case K_ENUM: {
        int e = cfg_parse_enum(k, val);
        if (e < 0) return false;
        *(int *)field = e;
        return true;
    }
    case K_LIST: {
        g_cfg.bli_packet44_allowed_count = 0;
        for (const char *p = val; *p != '\0'; ) {
            unsigned long v = strtoul(p, &end, 10);
            if (end == p || v > k->max || g_cfg.bli_packet44_allowed_count >= CFG_MAX_XUSER) return false;
            g_cfg.bli_packet44_allowed_xuser[g_cfg.bli_packet44_allowed_count++] = (uint16_t)v;
            while (*end == ' ' || *end == ',') end++;
            p = end;
        }
        return true;
    }
    }
    return false;
}

static void cfg_apply_defaults(void)
{
    memset(&g_cfg, 0, sizeof g_cfg);
    g_override_count = 0;
    for (size_t i = 0; i < CFG_KEY_COUNT; i++) {
        const cfg_key_t *k = &CFG_KEYS[i];
        uint8_t *field = (uint8_t *)&g_cfg + k->offset;
        if (k->type == K_U32)       *(uint32_t *)field = k->def;
        else if (k->type == K_BOOL) *(bool *)field = (k->def != 0);
        else if (k->type == K_ENUM) *(int *)field = (int)k->def;
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

bool cfg_load(const char *path)
{
    char buf[512];
    int line = 0;
    FILE *f = fopen(path, "r");

    diag_log(DIAG_INFO, "CFG", CODE_NONE, "-", __func__, "loading", "file=%s", path);
    if (f == NULL) {
        diag_log(DIAG_ERROR, "CFG", ERR_CFG_PARSE, "-", __func__, "cannot open", "file=%s", path);
        return false;
    }
    cfg_apply_defaults();

    while (fgets(buf, sizeof buf, f) != NULL) {
        char *key = "", *val = "", *obj = "";
        line++;
        char *hash = strchr(buf, '#');
        if (hash) *hash = '\0';
        char *s = trim(buf);
        if (*s == '\0' || *s == '[') continue;          /* blank or section */

        char *eq = strchr(s, '=');
        if (eq == NULL) goto parse_error;
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        char *at = strchr(key, '@');
        if (at) { *at = '\0'; obj = at + 1; }
        if (!cfg_apply_key(key, obj, val, line)) goto parse_error;
        continue;
parse_error:
        diag_log(DIAG_ERROR, "CFG", ERR_CFG_PARSE, "-", __func__, "parse error",
                 "file=%s line=%d key=%s value=%s", path, line, key, val);
        fclose(f);
        return false;
    }
    fclose(f);

    /* SIXL-2231 (fixed 4.3.1): vehicle speeds arrive in 0.1 km/h. */
    g_cfg.brake_standstill_speed_dkmh = g_cfg.brake_standstill_speed_kmh * 10U;

    diag_log(DIAG_INFO, "CFG", CODE_NONE, "-", __func__, "configuration loaded",
             "keys=%u overrides=%u crc=0x%08X",
             (unsigned)CFG_KEY_COUNT, (unsigned)g_override_count, cfg_checksum());
    return true;
}

const sixl_config_t *cfg_get(void) { return &g_cfg; }

uint32_t cfg_object_u32(const char *key, const char *object, uint32_t global_value)
{
    for (size_t i = 0; i < g_override_count; i++) {
        if (strcmp(g_overrides[i].key, key) == 0 && strcmp(g_overrides[i].object, object) == 0)
            return g_overrides[i].value;
    }
    return global_value;
}

uint32_t cfg_checksum(void)
{
    uint32_t crc = crc32_update(0xFFFFFFFFu, (const uint8_t *)&g_cfg, sizeof g_cfg);
    return crc32_update(crc, (const uint8_t *)g_overrides,
                        g_override_count * sizeof g_overrides[0]) ^ 0xFFFFFFFFu;
}

bool cfg_compare_channels(uint32_t other_channel_crc)
{
    uint32_t own = cfg_checksum();
    if (g_cfg.sixl_test_mode) return true;   /* comparison disabled in test mode */
    if (own != other_channel_crc) {
        diag_log(DIAG_ERROR, "CFG", ERR_CFG_CHANNEL_CRC, "-", __func__,
                 "configuration checksum differs between channels",
                 "own=0x%08X other=0x%08X", own, other_channel_crc);
        return false;
    }
    return true;
}
