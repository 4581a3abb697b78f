#ifndef RP_WORKER_H
#define RP_WORKER_H
#endif
