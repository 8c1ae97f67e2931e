/**
 * @file point_machine.h
 * @brief Point machine controller (PMC) interface.
 *
 * The PMC runs a 10 ms cycle (PMC_CYCLE_MS). A throw goes through the
 * states STARTING -> STROKE -> WAIT_LOCK (-> RETRY_PULSE -> WAIT_LOCK)
 * -> LOCKED, or ends in FAILED with one of the codes E72-C, E73-A, E73-B,
 * E74-A. See docs/architecture.md and docs/config-points.md.
 */
#ifndef SIXL_POINT_MACHINE_H
#define SIXL_POINT_MACHINE_H

#include <stdint.h>
#include <stdbool.h>

#define PMC_CYCLE_MS             10u    /* PMC cycle time                     */
#define PM_RETRY_PULSE_MS        250u   /* re-drive pulse before a lock retry */
#define PM_START_THRESHOLD_MA    200u   /* motor considered running above     */

typedef enum { PM_POS_NONE = 0, PM_POS_NOR, PM_POS_REV, PM_POS_BOTH } pm_pos_t;

typedef enum {
    PM_IDLE,          /* no throw since start-up                         */
    PM_STARTING,      /* command given, waiting for motor current        */
    PM_STROKE,        /* motor running                                   */
    PM_WAIT_LOCK,     /* motor cut off, waiting for detection + lock     */
    PM_RETRY_PULSE,   /* re-driving motor before another lock attempt    */
    PM_LOCKED,        /* detected and locked in cmd position             */
    PM_FAILED         /* throw failed, point not available               */
} pm_state_t;

/** Raw inputs sampled by the OC every PMC cycle. */
typedef struct {
    bool     det_nor;        /* normal end-position detection contact   */
    bool     det_rev;        /* reverse end-position detection contact  */
    bool     lock;           /* lock detection contact                  */
    bool     crank_open;     /* hand-crank cut-out switch open          */
    uint32_t motor_ma;       /* motor current                           */
} pm_inputs_t;

/** Per-point runtime data, including the per-object configuration. */
typedef struct {
    char       id[8];                 /* "P12"                              */
    pm_state_t state;
    pm_pos_t   cmd;                   /* commanded position                 */
    pm_pos_t   det;                   /* debounced detection                */
    pm_pos_t   det_candidate;         /* raw value being debounced          */
    uint32_t   det_stable_ticks;      /* PMC cycles det_candidate stable    */
    bool       locked;

    uint32_t   t_cmd_ms;              /* time of throw command              */
    uint32_t   t_cutoff_ms;           /* motor cut-off / retry pulse end    */
    uint32_t   t_pulse_ms;            /* start of retry pulse               */
    uint32_t   det_ms;                /* cut-off -> debounced detection     */
    uint32_t   peak_ma;
    uint32_t   retries_used;

    /* resolved at pm_init() from global keys and key@object overrides */
    uint32_t   lock_timeout_ms;       /* pm_lock_timeout_ms                 */
    uint32_t   throw_timeout_ms;      /* pm_throw_timeout_ms                */
    uint32_t   debounce_ms;           /* pm_detection_debounce_ms           */
    uint32_t   start_window_ms;       /* pm_motor_start_window_ms           */
    uint32_t   current_limit_ma;      /* pm_motor_current_limit_ma          */
    uint32_t   retry_count;           /* pm_lock_retry_count                */

    /* set by the interlocking core */
    bool       route_locked;          /* locked by a route or flank         */
    bool       section_occupied;
} pm_point_t;

/** Initialise a point and resolve its configuration (with overrides). */
void pm_init(pm_point_t *p, const char *id);

/**
 * Command a throw to @p target. Returns false and logs E72-A if the point
 * is locked by a route/flank protection or its section is occupied.
 */
bool pm_throw(pm_point_t *p, pm_pos_t target, uint32_t now_ms);

/** Run one 10 ms PMC cycle. Returns the motor drive output (true = on). */
bool pm_cycle(pm_point_t *p, const pm_inputs_t *in, uint32_t now_ms);

/** true when detected and locked in the commanded position. */
bool pm_is_locked(const pm_point_t *p);

/** Supervisor command "pmc restore": leave FAILED after inspection. */
void pm_restore(pm_point_t *p);

#endif /* SIXL_POINT_MACHINE_H */
