#ifndef RP_BUF_H
#define RP_BUF_H
#endif
