// A thin SQLite connection: WAL mode, numbered migrations, cached prepared statements.
// One Db per thread: a Db is not thread-safe. The store's single writer is the scheduler thread;
// readers open their own connections (see JobStore::OpenReader).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cairn::store {

class Stmt;

class Db {
 public:
  // Opens (creating when `create`) and migrates the database at `path`: with `migrations` when
  // given (each entry one numbered migration, append only), else the workspace's own schema.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool read_only = false,
                                          const std::vector<std::string>* migrations = nullptr);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Exec(const std::string& sql);
  // A prepared statement, cached by its text; reset and cleared of bindings on each call.
  Stmt& Prepare(const std::string& sql);
  Status Begin() { return Exec("BEGIN IMMEDIATE"); }
  Status Commit() { return Exec("COMMIT"); }
  void Rollback() { (void)Exec("ROLLBACK"); }
  int SchemaVersion();
  // Rows changed by the last statement.
  int Changes();
  std::string LastError() const;
  sqlite3* raw() { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  Status Migrate(const std::vector<std::string>& migrations);
  sqlite3* db_;
  std::map<std::string, std::unique_ptr<Stmt>> cache_;
};

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt();
  Stmt& Bind(int i, const std::string& v);
  Stmt& Bind(int i, long long v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<long long>(v)); }
  Stmt& Bind(int i, long v) { return Bind(i, static_cast<long long>(v)); }
  Stmt& BindNull(int i);
  Stmt& BindDouble(int i, double v);
  // Binds bytes as a BLOB (not copied: they must live until the statement runs or is reset).
  Stmt& BindBlob(int i, std::string_view bytes);
  Stmt& Bind(int i, const std::optional<long long>& v) { return v ? Bind(i, *v) : BindNull(i); }
  // Steps once: true while there is a row.
  bool Step();
  // Runs to completion (for writes); returns the error when one occurred.
  Status Run();
  std::string Text(int col);
  long long Int(int col);
  double Double(int col);
  // A BLOB column's bytes, valid until the next Step or Reset.
  std::string_view Blob(int col);
  bool IsNull(int col);
  void Reset();

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
  int last_rc_ = 0;
};

}  // namespace cairn::store
