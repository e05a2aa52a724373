// jit_llvm.cpp: C compiled in memory by Clang, linked in process by ORC's
// LLJIT (LLVM 14). The one C++ file of nnc; its interface is the C of
// runtime/jit_llvm.h, which says what it does. Built only with Clang and LLVM
// (CMake's NNC_JIT_LLVM, compile definition NNC_HAVE_LLVM_JIT).
//
// The compile goes through Clang's driver, as `clang -c` would: the driver
// turns -march=native into the host's CPU name and features and finds the
// system's and Clang's header directories; its one job, the cc1 command,
// becomes a CompilerInvocation, which a CompilerInstance runs with
// EmitObjAction into a memory buffer. The sources are files of an in-memory
// file system layered over the real one (headers like <math.h> come from
// disk, DIR/model.c and DIR/HEADER from memory).
#include "jit_llvm.h"

#include "jit_cpu.h"

#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/Basic/Version.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Driver/Compilation.h>
#include <clang/Driver/Driver.h>
#include <clang/Driver/Job.h>
#include <clang/Driver/Tool.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <llvm/ADT/SmallString.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/Host.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/VirtualFileSystem.h>
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#ifndef NNC_CLANG_PATH
#define NNC_CLANG_PATH "/usr/lib/llvm-14/bin/clang"
#endif

// What the JIT's session reported (a symbol nothing defines is reported
// there, not in the lookup's own error), for the next lookup's message.
struct Session {
    std::mutex lock;
    std::string errors;
};

struct RtJit {
    std::unique_ptr<llvm::orc::LLJIT> jit;
    uintptr_t cpu_model;  // the JIT's __cpu_model, 0 if none
    std::shared_ptr<Session> session;
};

namespace {

// The directory the in-memory sources live in (it does not exist on disk).
const char kDir[] = "/nnc-jit-memory";

// -O3 and the rest as runtime/jit_cc.c's cc line; -ffp-contract=off: gcc's
// -std=c99 contracts nothing, clang's default would fuse a*b+c into FMAs.
// NNC_JIT_NATIVE=0 drops -march=native, as it does for the cc path.
const char kFlags[] = "-std=c99 -O3 -march=native -fPIC -ffp-contract=off -fno-math-errno";
const char kFlagsPortable[] = "-std=c99 -O3 -fPIC -ffp-contract=off -fno-math-errno";

// Clang compiles __builtin_cpu_supports into a PC-relative read of
// __cpu_model (and __cpu_features2): it marks them dso_local, as libgcc's
// copy is in a shared object that links its own. The copy in the nnc
// executable is out of a 32-bit displacement's reach of JIT'd code (and not
// exported), and a definition in the C source is not possible (clang's
// builtin then casts a bitcast to a GlobalValue, undefined behaviour that
// crashes it). So every JIT gets a tiny IR module defining both with the
// types clang uses, allocated next to the model's code, and rt_llvm_load
// fills them from the process's (runtime/jit_cpu.c) before anything runs;
// rt_llvm_lookup refuses a symbol farther than 2 GiB from them.
enum { kCpuModelSize = 16, kCpuFeatures2Size = 4 };

std::once_flag g_init;
std::string g_identity;

void init_once()
{
    std::call_once(g_init, [] {
        llvm::InitializeNativeTarget();
        llvm::InitializeNativeTargetAsmPrinter();
        llvm::InitializeNativeTargetAsmParser();
        llvm::StringMap<bool> features;
        std::vector<std::string> on;
        if (llvm::sys::getHostCPUFeatures(features))
            for (auto &f : features)
                if (f.getValue()) on.push_back("+" + f.getKey().str());
        std::sort(on.begin(), on.end());
        std::string id = clang::getClangFullVersion() + "; " + llvm::sys::getProcessTriple() + "; " +
                         llvm::sys::getHostCPUName().str() + ";";
        for (auto &f : on) id += " " + f;
        g_identity = id;
    });
}

void set_err(char *err, size_t errlen, const std::string &msg)
{
    if (err && errlen) std::snprintf(err, errlen, "%s", msg.c_str());
}

// Diagnostics without the noise of the in-memory directory's name.
std::string tidy(std::string s)
{
    std::string from = std::string(kDir) + "/";
    for (size_t p; (p = s.find(from)) != std::string::npos;) s.erase(p, from.size());
    return s;
}

void split(const char *text, std::vector<std::string> &out)
{
    if (!text) return;
    std::istringstream in(text);
    for (std::string w; in >> w;) out.push_back(w);
}

}  // namespace

extern "C" const char *rt_llvm_identity(void)
{
    init_once();
    return g_identity.c_str();
}

extern "C" const char *rt_llvm_flags(void)
{
    const char *native = std::getenv("NNC_JIT_NATIVE");
    return native && std::strcmp(native, "0") == 0 ? kFlagsPortable : kFlags;
}

extern "C" int rt_llvm_compile_object(const char *c_src, const char *h_src, const char *header_name,
                                      const char *cflags_extra, void **obj, size_t *len, char *err, size_t errlen)
{
    init_once();
    *obj = nullptr;
    *len = 0;
    std::string src_path = std::string(kDir) + "/model.c", obj_path = std::string(kDir) + "/model.o";
    auto mem = llvm::makeIntrusiveRefCnt<llvm::vfs::InMemoryFileSystem>();
    mem->addFile(src_path, 0, llvm::MemoryBuffer::getMemBufferCopy(c_src, src_path));
    if (header_name && *header_name) {
        std::string h_path = std::string(kDir) + "/" + header_name;
        mem->addFile(h_path, 0, llvm::MemoryBuffer::getMemBufferCopy(h_src ? h_src : "", h_path));
    }
    auto fs = llvm::makeIntrusiveRefCnt<llvm::vfs::OverlayFileSystem>(llvm::vfs::getRealFileSystem());
    fs->pushOverlay(mem);

    std::string diag_text;
    llvm::raw_string_ostream diag_os(diag_text);
    llvm::IntrusiveRefCntPtr<clang::DiagnosticOptions> diag_opts = new clang::DiagnosticOptions();
    auto *printer = new clang::TextDiagnosticPrinter(diag_os, &*diag_opts);
    clang::DiagnosticsEngine diags(llvm::IntrusiveRefCntPtr<clang::DiagnosticIDs>(new clang::DiagnosticIDs()),
                                   &*diag_opts, printer, /*ShouldOwnClient=*/true);

    // the driver: the flags as `clang -c` takes them, -march=native resolved
    std::vector<std::string> words = {NNC_CLANG_PATH, "-c"};
    split(rt_llvm_flags(), words);
    split(cflags_extra, words);
    words.insert(words.end(), {src_path, "-o", obj_path});
    std::vector<const char *> argv;
    for (auto &w : words) argv.push_back(w.c_str());
    clang::driver::Driver driver(NNC_CLANG_PATH, llvm::sys::getProcessTriple(), diags, "nnc jit", fs);
    driver.setCheckInputsExist(false);
    std::unique_ptr<clang::driver::Compilation> comp(driver.BuildCompilation(argv));
    if (!comp || diags.hasErrorOccurred()) {
        diag_os.flush();
        set_err(err, errlen, "clang (in process): bad flags:\n" + tidy(diag_text));
        return -1;
    }
    const clang::driver::JobList &jobs = comp->getJobs();
    if (jobs.size() != 1 || !llvm::isa<clang::driver::Command>(*jobs.begin()) ||
        std::strcmp(llvm::cast<clang::driver::Command>(*jobs.begin()).getCreator().getName(), "clang") != 0) {
        set_err(err, errlen, "clang (in process): the driver did not make one cc1 job");
        return -1;
    }
    const llvm::opt::ArgStringList &cc1 = llvm::cast<clang::driver::Command>(*jobs.begin()).getArguments();

    auto inv = std::make_shared<clang::CompilerInvocation>();
    if (!clang::CompilerInvocation::CreateFromArgs(*inv, cc1, diags, NNC_CLANG_PATH) || diags.hasErrorOccurred()) {
        diag_os.flush();
        set_err(err, errlen, "clang (in process): bad cc1 flags:\n" + tidy(diag_text));
        return -1;
    }
    inv->getFrontendOpts().DisableFree = false;  // the driver's -disable-free leaks, fine for a process that exits
    inv->getCodeGenOpts().DisableFree = false;

    clang::CompilerInstance ci;
    ci.setInvocation(inv);
    ci.createDiagnostics(new clang::TextDiagnosticPrinter(diag_os, &ci.getDiagnosticOpts()), true);
    ci.createFileManager(fs);
    ci.setVerboseOutputStream(diag_os);  // "1 error generated." with the rest, not on stderr
    llvm::SmallString<0> buf;
    ci.setOutputStream(std::make_unique<llvm::raw_svector_ostream>(buf));
    clang::EmitObjAction act;
    bool ok = ci.ExecuteAction(act) && !ci.getDiagnostics().hasErrorOccurred();
    diag_os.flush();
    if (!ok || buf.empty()) {
        set_err(err, errlen, "clang (in process) failed:\n" + tidy(diag_text));
        return -1;
    }
    void *copy = std::malloc(buf.size());
    if (!copy) {
        set_err(err, errlen, "out of memory for the compiled object");
        return -1;
    }
    std::memcpy(copy, buf.data(), buf.size());
    *obj = copy;
    *len = buf.size();
    return 0;
}

extern "C" int rt_llvm_load(const void *obj, size_t len, RtJit **out, char *err, size_t errlen)
{
    using namespace llvm::orc;
    init_once();
    *out = nullptr;
    auto created = LLJITBuilder().create();
    if (!created) {
        set_err(err, errlen, "cannot create the JIT: " + llvm::toString(created.takeError()));
        return -1;
    }
    std::unique_ptr<LLJIT> jit = std::move(*created);
    auto session = std::make_shared<Session>();
    jit->getExecutionSession().setErrorReporter([session](llvm::Error e) {
        std::lock_guard<std::mutex> g(session->lock);
        session->errors += (session->errors.empty() ? "" : "; ") + llvm::toString(std::move(e));
    });
    JITDylib &jd = jit->getMainJITDylib();
    // libgcc's CPU initializer (jit_cpu.c), then whatever the process exports
    SymbolMap cpu;
    RtCpuInitFn init = rt_jit_cpu_init();
    if (init)
        cpu[jit->mangleAndIntern("__cpu_indicator_init")] = llvm::JITEvaluatedSymbol(
            static_cast<llvm::JITTargetAddress>(reinterpret_cast<uintptr_t>(init)), llvm::JITSymbolFlags::Exported);
    if (!cpu.empty())
        if (auto e = jd.define(absoluteSymbols(std::move(cpu)))) {
            set_err(err, errlen, "JIT: " + llvm::toString(std::move(e)));
            return -1;
        }
    auto gen = DynamicLibrarySearchGenerator::GetForCurrentProcess(jit->getDataLayout().getGlobalPrefix());
    if (!gen) {
        set_err(err, errlen, "JIT: " + llvm::toString(gen.takeError()));
        return -1;
    }
    jd.addGenerator(std::move(*gen));
    uintptr_t cpu_model = 0;
    if (rt_jit_cpu_model()) {
        auto ctx = std::make_unique<llvm::LLVMContext>();
        auto mod = std::make_unique<llvm::Module>("nnc-jit-cpu-model", *ctx);
        mod->setDataLayout(jit->getDataLayout());
        mod->setTargetTriple(jit->getTargetTriple().str());
        llvm::Type *i32 = llvm::Type::getInt32Ty(*ctx);
        llvm::StructType *model = llvm::StructType::get(i32, i32, i32, llvm::ArrayType::get(i32, 1));
        new llvm::GlobalVariable(*mod, model, false, llvm::GlobalValue::ExternalLinkage,
                                 llvm::ConstantAggregateZero::get(model), "__cpu_model");
        new llvm::GlobalVariable(*mod, i32, false, llvm::GlobalValue::ExternalLinkage, llvm::ConstantInt::get(i32, 0),
                                 "__cpu_features2");
        if (auto e = jit->addIRModule(ThreadSafeModule(std::move(mod), std::move(ctx)))) {
            set_err(err, errlen, "JIT: " + llvm::toString(std::move(e)));
            return -1;
        }
        auto fill = [&](const char *name, const void *from, size_t size) -> uintptr_t {
            auto sym = jit->lookup(name);
            if (!sym) {
                set_err(err, errlen, std::string("JIT: ") + llvm::toString(sym.takeError()));
                return 0;
            }
            uintptr_t at = static_cast<uintptr_t>(sym->getAddress());
            std::memcpy(reinterpret_cast<void *>(at), from, size);
            return at;
        };
        cpu_model = fill("__cpu_model", rt_jit_cpu_model(), kCpuModelSize);
        if (!cpu_model || !fill("__cpu_features2", rt_jit_cpu_features2(), kCpuFeatures2Size)) return -1;
    }
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(static_cast<const char *>(obj), len),
                                                       "nnc-model.o");
    if (auto e = jit->addObjectFile(std::move(buffer))) {
        set_err(err, errlen, "JIT: cannot add the object: " + llvm::toString(std::move(e)));
        return -1;
    }
    *out = new RtJit{std::move(jit), cpu_model, session};
    return 0;
}

extern "C" int rt_llvm_compile(const char *c_src, const char *h_src, const char *header_name,
                               const char *cflags_extra, RtJit **out, char *err, size_t errlen)
{
    void *obj = nullptr;
    size_t len = 0;
    *out = nullptr;
    if (rt_llvm_compile_object(c_src, h_src, header_name, cflags_extra, &obj, &len, err, errlen) != 0) return -1;
    int rc = rt_llvm_load(obj, len, out, err, errlen);
    std::free(obj);
    return rc;
}

extern "C" void *rt_llvm_lookup(RtJit *j, const char *name, char *err, size_t errlen)
{
    auto sym = j->jit->lookup(name);
    if (!sym) {
        std::string why = llvm::toString(sym.takeError());
        {
            std::lock_guard<std::mutex> g(j->session->lock);
            if (!j->session->errors.empty()) why = j->session->errors + " (" + why + ")";
            j->session->errors.clear();
        }
        set_err(err, errlen, std::string("JIT: ") + name + ": " + why);
        return nullptr;
    }
    uintptr_t at = static_cast<uintptr_t>(sym->getAddress());
    uintptr_t far = j->cpu_model > at ? j->cpu_model - at : at - j->cpu_model;
    if (j->cpu_model && far >= (uintptr_t(1) << 31)) {  // never seen: the kernel maps both close together
        set_err(err, errlen, std::string("JIT: ") + name + " is out of 32-bit reach of __cpu_model");
        return nullptr;
    }
    return reinterpret_cast<void *>(at);
}

extern "C" void rt_llvm_free(RtJit *j) { delete j; }
