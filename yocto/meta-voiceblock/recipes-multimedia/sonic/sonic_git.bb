SUMMARY = "Simple library to speed up or slow down speech"
DESCRIPTION = "libsonic, which espeak-ng (compiled into voiceblock by the \
               espeak-rs-sys crate) links for fast speech rates."
HOMEPAGE = "https://github.com/waywardgeek/sonic"
BUGTRACKER = "https://github.com/waywardgeek/sonic/issues"
SECTION = "libs"
LICENSE = "Apache-2.0"
# The licence notice at the top of sonic.h (md5 taken from Debian's sonic
# 0.2.0 header, whose notice is the same text).
LIC_FILES_CHKSUM = "file://sonic.h;beginline=1;endline=7;md5=54aa41663d6a9c9b521b57fa1d65de56"

PV = "0.2.0+git"

# The commit espeak-ng 1.52 itself pins (cmake/deps.cmake, FetchContent).
SRC_URI = "git://github.com/waywardgeek/sonic.git;protocol=https;nobranch=1"
SRCREV = "fbf75c3d6d846bad3bb3d456cbc5d07d9fd8c104"

S = "${WORKDIR}/git"

CVE_PRODUCT = "sonic"

# The upstream Makefile hard-codes gcc and -O3 and builds a demo program that
# needs fftw; the library is one file, so build it here with the cross flags.
do_compile() {
    ${CC} ${CFLAGS} -fPIC -c ${S}/sonic.c -o sonic.o
    ${CC} ${LDFLAGS} -shared -Wl,-soname,libsonic.so.0 -o libsonic.so.0.3.0 sonic.o -lm
}

do_install() {
    install -d ${D}${libdir} ${D}${includedir}
    install -m 0755 libsonic.so.0.3.0 ${D}${libdir}/
    ln -sf libsonic.so.0.3.0 ${D}${libdir}/libsonic.so.0
    ln -sf libsonic.so.0 ${D}${libdir}/libsonic.so
    install -m 0644 ${S}/sonic.h ${D}${includedir}/
}

BBCLASSEXTEND = "native"
