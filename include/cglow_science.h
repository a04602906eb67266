/* cglow science API (model.md sections 5-6): power spectra, posterior grids, calibration,
 * pictures and the report. Included by cglow.h; do not include directly. */
#ifndef CGLOW_SCIENCE_H
#define CGLOW_SCIENCE_H

#endif
