/* asan.h: NNC_ASAN is defined when the test is built with AddressSanitizer
 * (gcc defines __SANITIZE_ADDRESS__, clang has __has_feature), so slow tests
 * can run fewer cases there and skip memory limits ASan cannot live under. */
#ifndef NNC_TESTS_ASAN_H
#define NNC_TESTS_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define NNC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NNC_ASAN 1
#endif
#endif

#endif
