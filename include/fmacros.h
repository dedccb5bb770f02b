/* fmacros.h - feature-test macros, included first by every .c file
 * (as in hiredis and Redis), so that every translation unit sees the same
 * libc declarations whatever it includes next. */
#ifndef CG_FMACROS_H
#define CG_FMACROS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#endif
