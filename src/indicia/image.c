/*
 * The indicium's DataMatrix symbol as a PNG file (include/meterkey/indicium.h;
 * parameters in docs/indicium.md §6).
 *
 * Writing: libdmtx encodes the text line (ASCII scheme, smallest square
 * symbol that holds it) into an image with a quiet zone; we copy one channel
 * of it into an 8-bit grayscale PNG built in memory (libpng) and put the file
 * in place atomically.
 *
 * Reading: the file is read whole with a size cap, its dimensions are
 * bounded before any pixel buffer is allocated, libpng converts whatever it
 * holds (gray, RGB, RGBA, palette, 16-bit) to 8-bit gray, and libdmtx looks
 * for a symbol for at most IMG_TIMEOUT_MS.
 *
 * libpng reports errors by longjmp: each function that calls it keeps
 * everything that must survive a jump outside its own frame (in the
 * caller's struct) or unchanged after setjmp, as C requires.
 */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <dmtx.h>
#include <png.h>

#include "core/file_int.h"
#include "meterkey/indicium.h"

#define IMG_DIM_MAX 4096                     /* pixels, each side */
#define IMG_FILE_MAX ((size_t)16 << 20)      /* bytes of PNG read */
#define IMG_TIMEOUT_MS 2000                  /* the symbol search */
#define IMG_MODULE_PX 5                      /* pixels per module */
#define IMG_QUIET_MODULES 4                  /* quiet zone, in modules */

/* libpng's error and warning handlers: no printing, jump back on error. */
static void png_on_error(png_structp png, png_const_charp msg)
{
	(void)msg;
	png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* ---- Writing ----------------------------------------------------------------- */

static void png_write_cb(png_structp png, png_bytep p, png_size_t n)
{
	struct mk_buf *out = png_get_io_ptr(png);

	if (mk_buf_put_bytes(out, p, n) != MK_OK)
		png_error(png, "PNG larger than the cap");
}

static void png_flush_cb(png_structp png)
{
	(void)png;
}

/* Encodes the gray pixels pix[w*h] (top row first) as a PNG into out. */
static enum mk_err png_encode(const uint8_t *pix, int w, int h, struct mk_buf *out)
{
	png_structp png;
	png_infop info;

	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
	if (png == NULL)
		return MK_ERR_NOMEM;
	if ((info = png_create_info_struct(png)) == NULL) {
		png_destroy_write_struct(&png, NULL);
		return MK_ERR_NOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return MK_ERR_INDICIUM_IMAGE;
	}
	png_set_write_fn(png, out, png_write_cb, png_flush_cb);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
	             PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, pix + (size_t)y * (size_t)w);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return MK_OK;
}

/* A line the symbol may carry: 1..MK_INDICIUM_TEXT_MAX-1 printable ASCII. */
static size_t line_len(const char *line)
{
	size_t n = strnlen(line, MK_INDICIUM_TEXT_MAX);

	if (n == 0 || n >= MK_INDICIUM_TEXT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			return 0;
	return n;
}

enum mk_err mk_indicium_png_write(const char *line, const char *path)
{
	enum mk_err r = MK_ERR_INTERNAL;
	DmtxEncode *enc = NULL;
	uint8_t *pix = NULL;
	struct mk_buf *png = NULL;
	size_t n;
	int w, h;

	if (line == NULL || path == NULL || (n = line_len(line)) == 0)
		return MK_ERR_INVALID_ARG;
	if ((enc = dmtxEncodeCreate()) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (dmtxEncodeSetProp(enc, DmtxPropScheme, DmtxSchemeAscii) != DmtxPass ||
	    dmtxEncodeSetProp(enc, DmtxPropSizeRequest, DmtxSymbolSquareAuto) != DmtxPass ||
	    dmtxEncodeSetProp(enc, DmtxPropModuleSize, IMG_MODULE_PX) != DmtxPass ||
	    dmtxEncodeSetProp(enc, DmtxPropMarginSize, IMG_MODULE_PX * IMG_QUIET_MODULES) != DmtxPass) {
		r = MK_ERR_INTERNAL;
		goto out;
	}
	if (dmtxEncodeDataMatrix(enc, (int)n, (unsigned char *)(uintptr_t)line) != DmtxPass) {
		r = MK_ERR_INDICIUM_IMAGE;
		goto out;
	}
	w = dmtxImageGetProp(enc->image, DmtxPropWidth);
	h = dmtxImageGetProp(enc->image, DmtxPropHeight);
	if (w <= 0 || h <= 0 || w > IMG_DIM_MAX || h > IMG_DIM_MAX) {
		r = MK_ERR_INDICIUM_IMAGE;
		goto out;
	}
	if ((pix = malloc((size_t)w * (size_t)h)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	/* libdmtx counts rows from the bottom; a PNG's first row is the top. */
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			int v = 255;

			if (dmtxImageGetPixelValue(enc->image, x, h - 1 - y, 0, &v) != DmtxPass) {
				r = MK_ERR_INTERNAL;
				goto out;
			}
			pix[(size_t)y * (size_t)w + (size_t)x] = (uint8_t)v;
		}
	if ((png = mk_buf_new(IMG_FILE_MAX)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if ((r = png_encode(pix, w, h, png)) != MK_OK)
		goto out;
	if ((r = mk_file_replace(path, mk_buf_data(png), mk_buf_len(png), 0, NULL, NULL)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	free(pix);
	mk_buf_free(png);
	if (enc != NULL)
		dmtxEncodeDestroy(&enc);
	return r;
}

/* ---- Reading ------------------------------------------------------------------- */

/* What png_decode fills; it lives in the caller's frame so that it keeps
 * its values across libpng's longjmp. */
struct png_in {
	struct mk_buf *src;
	uint8_t *pix; /* w * h gray bytes, top row first */
	png_bytep *rows;
	png_uint_32 w, h;
};

static void png_read_cb(png_structp png, png_bytep p, png_size_t n)
{
	struct png_in *in = png_get_io_ptr(png);

	if (mk_buf_get_bytes(in->src, p, n) != MK_OK)
		png_error(png, "PNG truncated");
}

/*
 * Decodes the PNG in in->src to 8-bit gray pixels in in->pix. The size is
 * checked (and capped by png_set_user_limits) before the pixels are
 * allocated. MK_ERR_INDICIUM_IMAGE for anything libpng refuses.
 */
static enum mk_err png_decode(struct png_in *in)
{
	png_structp png;
	png_infop info;
	int depth, color;

	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
	if (png == NULL)
		return MK_ERR_NOMEM;
	if ((info = png_create_info_struct(png)) == NULL) {
		png_destroy_read_struct(&png, NULL, NULL);
		return MK_ERR_NOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		return MK_ERR_INDICIUM_IMAGE;
	}
	png_set_user_limits(png, IMG_DIM_MAX, IMG_DIM_MAX);
	png_set_read_fn(png, in, png_read_cb);
	png_read_info(png, info);
	in->w = png_get_image_width(png, info);
	in->h = png_get_image_height(png, info);
	depth = png_get_bit_depth(png, info);
	color = png_get_color_type(png, info);
	if (in->w == 0 || in->h == 0 || in->w > IMG_DIM_MAX || in->h > IMG_DIM_MAX)
		png_error(png, "image too large");
	if (depth == 16)
		png_set_strip_16(png);
	if (color == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (color & PNG_COLOR_MASK_ALPHA)
		png_set_strip_alpha(png);
	if (color & PNG_COLOR_MASK_COLOR)
		png_set_rgb_to_gray_fixed(png, 1, -1, -1);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	if (png_get_rowbytes(png, info) != in->w || png_get_channels(png, info) != 1)
		png_error(png, "not converted to 8-bit gray");
	in->pix = malloc((size_t)in->w * in->h);
	in->rows = malloc(sizeof(*in->rows) * in->h);
	if (in->pix == NULL || in->rows == NULL)
		png_error(png, "out of memory");
	for (png_uint_32 y = 0; y < in->h; y++)
		in->rows[y] = in->pix + (size_t)y * in->w;
	png_read_image(png, in->rows);
	png_destroy_read_struct(&png, &info, NULL);
	return MK_OK;
}

/* Looks for the first symbol in the gray image that decodes to a line
 * (printable ASCII, shorter than MK_INDICIUM_TEXT_MAX). */
static enum mk_err dmtx_find(struct png_in *in, unsigned timeout_ms, char line[static MK_INDICIUM_TEXT_MAX])
{
	enum mk_err r = MK_ERR_INDICIUM_IMAGE;
	DmtxImage *img = NULL;
	DmtxDecode *dec = NULL;
	DmtxRegion *reg;
	DmtxTime timeout;

	if ((img = dmtxImageCreate(in->pix, (int)in->w, (int)in->h, DmtxPack8bppK)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	/* Our rows are stored top first, which is what libdmtx expects of a
	 * buffer (its default, DmtxFlipNone, read as dmtxread does). */
	if (dmtxImageSetProp(img, DmtxPropImageFlip, DmtxFlipNone) != DmtxPass) {
		r = MK_ERR_INTERNAL;
		goto out;
	}
	if ((dec = dmtxDecodeCreate(img, 1)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	timeout = dmtxTimeAdd(dmtxTimeNow(), timeout_ms);
	while ((reg = dmtxRegionFindNext(dec, &timeout)) != NULL) {
		DmtxMessage *msg = dmtxDecodeMatrixRegion(dec, reg, DmtxUndefined);
		int ok;

		dmtxRegionDestroy(&reg);
		if (msg == NULL)
			continue;
		/* a symbol printed from a line with its end of line still on
		 * (newline, CR LF) carries the same indicium */
		int n = msg->outputIdx;

		while (n > 0 && (msg->output[n - 1] == '\n' || msg->output[n - 1] == '\r'))
			n--;
		ok = n > 0 && n < MK_INDICIUM_TEXT_MAX;
		for (int i = 0; ok && i < n; i++)
			ok = msg->output[i] >= 0x20 && msg->output[i] <= 0x7e;
		if (ok) {
			memcpy(line, msg->output, (size_t)n);
			line[n] = '\0';
		}
		dmtxMessageDestroy(&msg);
		if (ok) {
			r = MK_OK;
			goto out;
		}
	}
	r = MK_ERR_INDICIUM_IMAGE;
out:
	if (dec != NULL)
		dmtxDecodeDestroy(&dec);
	if (img != NULL)
		dmtxImageDestroy(&img);
	return r;
}

/* The PNG's bytes in p[0..n) (path NULL), or the file at path: the first
 * symbol that decodes to a line, into line. */
static enum mk_err png_read(const char *path, const uint8_t *p, size_t n, unsigned timeout_ms,
                            char line[static MK_INDICIUM_TEXT_MAX])
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct png_in in = { 0 };
	enum mk_err e;

	line[0] = '\0';
	if (path == NULL && n > IMG_FILE_MAX)
		return MK_ERR_INDICIUM_IMAGE;
	if ((in.src = mk_buf_new(path != NULL ? IMG_FILE_MAX + 1 : n + 1)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (path == NULL && mk_buf_put_bytes(in.src, p, n) != MK_OK) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (path != NULL && (e = mk_file_read(path, IMG_FILE_MAX, in.src)) != MK_OK) {
		r = e == MK_ERR_BUF_FULL ? MK_ERR_INDICIUM_IMAGE : e == MK_ERR_NOMEM ? e : MK_ERR_IO;
		goto out;
	}
	if (mk_buf_len(in.src) < 8 || png_sig_cmp(mk_buf_data(in.src), 0, 8) != 0) {
		r = MK_ERR_INDICIUM_IMAGE;
		goto out;
	}
	if ((r = png_decode(&in)) != MK_OK)
		goto out;
	if ((r = dmtx_find(&in, timeout_ms, line)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		line[0] = '\0';
	free(in.pix);
	free(in.rows);
	mk_buf_free(in.src);
	return r;
}

enum mk_err mk_indicium_png_read(const char *path, char line[static MK_INDICIUM_TEXT_MAX])
{
	if (path == NULL)
		return MK_ERR_INVALID_ARG;
	return png_read(path, NULL, 0, IMG_TIMEOUT_MS, line);
}

enum mk_err mk_indicium_png_decode(const uint8_t *p, size_t n, unsigned timeout_ms,
                                   char line[static MK_INDICIUM_TEXT_MAX])
{
	if ((p == NULL && n != 0) || timeout_ms == 0)
		return MK_ERR_INVALID_ARG;
	return png_read(NULL, p != NULL ? p : (const uint8_t *)"", n,
	                timeout_ms < IMG_TIMEOUT_MS ? timeout_ms : IMG_TIMEOUT_MS, line);
}
