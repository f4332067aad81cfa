#include "compute/run_layout.h"
