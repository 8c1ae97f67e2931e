/**
 * @file route_lock.h
 * @brief Interlocking core (IXC): route setting, locking, sectional release.
 *
 * Runs in the 100 ms IXC cycle on both channels. Concepts and timers are
 * described in docs/route-locking.rst; codes in docs/errors-interlocking.md.
 */
#ifndef SIXL_ROUTE_LOCK_H
#define SIXL_ROUTE_LOCK_H

#include <stdint.h>
#include <stdbool.h>
#include "point_machine.h"

#define IXC_CYCLE_MS      100u
#define RL_MAX_SECTIONS   8u
#define RL_MAX_POINTS     8u
#define RL_MAX_FLANK      4u

typedef enum {
    RL_IDLE, RL_REQUESTED, RL_SETTING, RL_LOCKED, RL_SIGNAL_CLEAR,
    RL_OCCUPIED, RL_RELEASING, RL_APPROACH_LOCKED
} rl_state_t;

/** One track section of a route, in route order. */
typedef struct {
    char      id[8];               /* "T104" or "AS203"                     */
    bool      occupied;            /* from TCM/ACE                          */
    bool      was_occupied;        /* train has entered during this route   */
    bool      release_running;
    bool      released;
    /*
     * Release delay in milliseconds. 16 bits since the SIXL-1987 rework
     * (4.2.0): values above 65535 ms wrap around -> SIXL-2342.
     */
    uint16_t  release_delay_ms;
    uint32_t  release_start_ms;
    pm_point_t *points[RL_MAX_POINTS];  /* points inside this section       */
    uint8_t   point_count;
} rl_section_t;

typedef struct {
    pm_point_t *point;
    pm_pos_t    required;
} rl_point_req_t;

typedef struct {
    char           id[16];         /* "RT-S4-S9"                            */
    rl_state_t     state;
    rl_section_t  *sections[RL_MAX_SECTIONS];
    uint8_t        section_count;
    rl_point_req_t points[RL_MAX_POINTS];
    uint8_t        point_count;
    rl_point_req_t flank[RL_MAX_FLANK];
    uint8_t        flank_count;
    uint32_t       request_ms;
    bool           flank_reported;       /* E62-A logged for this request  */
    bool           train_approaching;    /* set from approach section      */
    uint32_t       approach_lock_start_ms;
} rl_route_t;

/** Request a route; E61-B if it conflicts with a locked route. */
bool rl_request_route(rl_route_t *r, rl_route_t *const all[], uint8_t n, uint32_t now_ms);

/** One IXC cycle for a route: setting, timeout, sectional release. */
void rl_cycle(rl_route_t *r, uint32_t now_ms);

/** Signaller cancels the route; approach locking may apply (W61-D). */
void rl_cancel(rl_route_t *r, uint32_t now_ms);

/** Start the release timer of one section (route_release_delay_s). */
void rl_start_release(rl_route_t *r, rl_section_t *sec, uint32_t now_ms);

#endif /* SIXL_ROUTE_LOCK_H */
