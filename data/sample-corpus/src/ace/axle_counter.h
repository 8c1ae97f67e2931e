/**
 * @file axle_counter.h
 * @brief Axle counter evaluator (ACE) interface.
 *
 * A section is bounded by up to ACE_MAX_HEADS counting heads. The section
 * is CLEAR when axles counted in equal axles counted out. After a
 * disturbance it can only be restored through ace_request_reset(), whose
 * behaviour depends on ace_reset_mode (docs/config-axle-counter.md).
 */
#ifndef SIXL_AXLE_COUNTER_H
#define SIXL_AXLE_COUNTER_H

#include <stdint.h>
#include <stdbool.h>
#include "config_loader.h"

#define ACE_MAX_HEADS        4u
#define ACE_EVAL_CYCLE_MS    50u
#define ACE_SWEEP_MAX_MS     600000u   /* sweep must complete within 10 min */

typedef enum {
    ACE_CLEAR,
    ACE_OCCUPIED,
    ACE_DISTURBED,        /* counts not trustworthy; reported occupied       */
    ACE_SWEEP_PENDING     /* reset accepted, waiting for/observing sweep run */
} ace_state_t;

typedef enum { ACE_DIR_IN = +1, ACE_DIR_OUT = -1 } ace_dir_t;

typedef struct {
    char     id[8];              /* "H17"                                   */
    uint32_t last_msg_ms;        /* last message from the head              */
    bool     comm_ok;
    bool     supply_warned;
} ace_head_t;

typedef struct {
    char             id[8];      /* "AS203"                                 */
    ace_state_t      state;
    uint32_t         count_in;
    uint32_t         count_out;
    bool             balanced_at_disturbance;

    ace_reset_mode_t reset_mode;       /* ace_reset_mode (with override)    */
    uint32_t         min_sweep_axles;  /* ace_min_sweep_axles               */

    /* sweep run bookkeeping */
    uint32_t         sweep_in;
    uint32_t         sweep_out;
    int8_t           sweep_entry_head; /* -1 = sweep not started            */
    int8_t           sweep_exit_head;
    uint32_t         sweep_start_ms;

    ace_head_t       heads[ACE_MAX_HEADS];
    uint8_t          head_count;
} ace_section_t;

/** Initialise a section with its boundary heads; starts DISTURBED. */
void ace_init(ace_section_t *s, const char *id, const char *const head_ids[], uint8_t head_count);

/** Axle passed head @p head in direction @p dir (into or out of section). */
void ace_count_event(ace_section_t *s, uint8_t head, ace_dir_t dir, uint32_t now_ms);

/** Phase check result from a head: overlap between sensor systems in µs. */
void ace_head_phase_event(ace_section_t *s, uint8_t head, uint32_t offset_us);

/** Head restarted (power return, reset): counts in the section lost. */
void ace_head_restart(ace_section_t *s, uint8_t head);

/** Head supply measurement in millivolts (W31-D below 10.8 V). */
void ace_head_supply(ace_section_t *s, uint8_t head, uint32_t supply_mv);

/** 50 ms evaluation: communication supervision, sweep completion. */
void ace_section_evaluate(ace_section_t *s, uint32_t now_ms);

/** Operator reset ("ace reset AS203"). Returns false if refused. */
bool ace_request_reset(ace_section_t *s, uint32_t now_ms);

/** true when the section must be treated as occupied. */
bool ace_is_occupied(const ace_section_t *s);

#endif /* SIXL_AXLE_COUNTER_H */
