# install.cmake: what `cmake --install` puts under the prefix (included by
# the top CMakeLists.txt).
#
#   bin/nnc                              the tool (nnc::nnc_tool)
#   lib/libnnc.so.0.1.0 (.so.0, .so)     the public API only (nnc::nnc)
#   lib/libnnc.a                         everything (nnc::nnc_static; its private
#                                        libraries: nnc.pc's Libs.private)
#   include/nnc/nnc.h
#   lib/pkgconfig/nnc.pc                 pkg-config --cflags --libs [--static] nnc
#   lib/cmake/nnc/                       find_package(nnc): nncConfig.cmake,
#                                        nncConfigVersion.cmake, nncTargets*.cmake,
#                                        nnc.cmake (nnc_add_model), included by the config
#
# Both nnc.pc and the CMake package find the prefix from where they sit, so an
# installed tree may be moved (the tests install into a temporary directory).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(nnc PROPERTIES EXPORT_NAME nnc_tool)
install(TARGETS nnc nnc_shared nnc_lib EXPORT nncTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Unspecified
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})  # (include/: the targets' INSTALL_INTERFACE)
install(FILES ${PROJECT_SOURCE_DIR}/include/nnc/nnc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nnc)

set(NNC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nnc)
install(EXPORT nncTargets NAMESPACE nnc:: DESTINATION ${NNC_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nncConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nncConfig.cmake INSTALL_DESTINATION ${NNC_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)  # 0.x: a minor version may break
install(FILES ${PROJECT_BINARY_DIR}/nncConfig.cmake ${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/nnc.cmake DESTINATION ${NNC_CMAKE_DIR})

# pkg-config: Libs for the shared library; Libs.private for a static link
# (pkg-config --static): the JIT's Clang/LLVM when built in, zlib, libm,
# libdl, pthreads and the C++ runtime of the JIT's one C++ file.
set(NNC_PC_LIBS_PRIVATE "${NNC_PC_JIT_LIBS} -lz -lm -ldl -lpthread")
string(STRIP "${NNC_PC_LIBS_PRIVATE}" NNC_PC_LIBS_PRIVATE)
# the prefix seen from lib/pkgconfig/ (or lib/x86_64-linux-gnu/pkgconfig/, Debian's /usr)
file(RELATIVE_PATH NNC_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" NNC_PC_TO_PREFIX "${NNC_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/nnc.pc.in ${PROJECT_BINARY_DIR}/nnc.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nnc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
