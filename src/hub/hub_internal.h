/*
 * hub_internal.h — names shared by the hub's files (hub_index.c: records and the
 * index; hub_card.c: the model card; hub_build.c: training, timing, publishing).
 */
#ifndef GPUNAS_HUB_INTERNAL_H
#define GPUNAS_HUB_INTERNAL_H

#include <jansson.h>

#include "gpunas/arch.h"
#include "gpunas/hub.h"

/* o["a"]["b"] for "a.b" (NULL when absent). */
json_t *gn__hub_json_path(json_t *o, const char *dotted);
/* Fill m from a model record (path: the file, for messages). */
int gn__hub_model_from_json(json_t *o, const char *path, const char *folder, gn_hub_model *m, gn_error *err);
/* The model card (markdown) for a record and its arch. */
char *gn__hub_card_markdown(json_t *record, const gn_arch *a, gn_error *err);

#endif
