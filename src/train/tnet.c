/* tnet.c - the training network (tnet_impl.h) compiled for float and for double. */
#include "tnet.h"

#include "model/forward.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TNET_R float
#define TNET_S _f
#define TNET_DOUBLE 0
#include "tnet_impl.h"
#undef TNET_R
#undef TNET_S
#undef TNET_DOUBLE

#define TNET_R double
#define TNET_S _d
#define TNET_DOUBLE 1
#include "tnet_impl.h"
#undef TNET_R
#undef TNET_S
#undef TNET_DOUBLE
